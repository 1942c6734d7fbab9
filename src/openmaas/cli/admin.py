"""Local commands: they act on the stores configured by ``OPENMAAS_*``, no server needed.

``db upgrade | current``, ``gc``, ``admin bootstrap``, ``server`` and ``demo load``.
"""

from __future__ import annotations

import json as json_module
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from openmaas.cli import output
from openmaas.cli.options import Json
from openmaas.cli.session import platform
from openmaas.errors import Unavailable

if TYPE_CHECKING:
    from openmaas.domain.context import Platform

db = typer.Typer(help="The metadata database schema.", no_args_is_help=True)
admin = typer.Typer(help="Platform administration.", no_args_is_help=True)
demo = typer.Typer(help="Demo content.", no_args_is_help=True)


def _require_schema(p: Platform) -> None:
    if p.store.current_revision() is None:
        raise Unavailable("the database is not initialised: run `openmaas db upgrade` first")


@db.command("upgrade")
def db_upgrade(ctx: typer.Context, json: Json = False) -> None:
    """Create or migrate the database schema to the latest revision."""
    with platform(ctx) as p:
        p.prepare()
        revision = p.store.current_revision()
        url = p.store.url.render_as_string(hide_password=True)
    if json:
        output.emit_json({"database": url, "revision": revision})
    else:
        output.success(f"Database {url} is at revision {revision}")


@db.command("current")
def db_current(ctx: typer.Context, json: Json = False) -> None:
    """Show the database's schema revision (none if not initialised)."""
    with platform(ctx) as p:
        revision = p.store.current_revision()
        url = p.store.url.render_as_string(hide_password=True)
    if json:
        output.emit_json({"database": url, "revision": revision})
    else:
        typer.echo(f"{url}: {revision or 'not initialised (run `openmaas db upgrade`)'}")


def gc(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be deleted.")
    ] = False,
    grace_minutes: Annotated[
        float,
        typer.Option(min=0, help="Keep blobs younger than this: they may be mid-upload."),
    ] = 60,
    json: Json = False,
) -> None:
    """Delete stored blobs that no dataset, task or model refers to any more."""
    from openmaas.domain.blobs import gc as collect

    with platform(ctx) as p:
        _require_schema(p)
        digests = collect(p, grace=timedelta(minutes=grace_minutes), dry_run=dry_run)
    if json:
        output.emit_json({"dry_run": dry_run, "blobs": digests})
        return
    for digest in digests:
        typer.echo(digest)
    verb = "Would delete" if dry_run else "Deleted"
    output.success(f"{verb} {len(digests)} unreferenced blob(s)")


@admin.command("bootstrap")
def bootstrap(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="Name of the first admin.")] = "admin",
    password: Annotated[
        str | None,
        typer.Option(
            help="Its password. (default: $OPENMAAS_ADMIN_PASSWORD, else random)",
            show_default=False,
        ),
    ] = None,
    json: Json = False,
) -> None:
    """Create the first platform admin, with a token; does nothing if an admin exists."""
    from openmaas.domain.identity import bootstrap_admin

    with platform(ctx) as p:
        p.prepare()
        result = bootstrap_admin(p, username, password)
        saved = p.settings.home / "admin-credentials.json"
    created = result.token is not None
    creds = {"username": result.user.username, "password": result.password, "token": result.token}
    if created:
        # A laptop install prints these on every `make up`; owner-readable only.
        fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json_module.dump(creds, f, indent=2)
    elif saved.exists():
        creds = json_module.loads(saved.read_text(encoding="utf-8"))
    if json:
        output.emit_json({"created": created, **creds})
        return
    if not created and not saved.exists():
        output.note(f"an admin already exists ({result.user.username}); nothing changed")
        return
    output.details(creds)
    output.note(
        f"Log in with `openmaas login --username {creds['username']}` or use the token "
        f"(OPENMAAS_TOKEN). Saved in {saved}: delete that file once you have stored them."
    )


def server(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface. (default: $OPENMAAS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port. (default: $OPENMAAS_PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart on code changes (dev).")
    ] = False,
) -> None:
    """Migrate the database, then serve the API with uvicorn."""
    import uvicorn

    with platform(ctx) as p:
        p.prepare()
        settings = p.settings
    uvicorn.run(
        "openmaas.api.app:app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        reload=reload,
        proxy_headers=settings.trust_proxy_headers,
    )


@demo.command("load")
def demo_load(ctx: typer.Context, json: Json = False) -> None:
    """Load demo organisations, projects, datasets and tasks into the local stores."""
    try:
        from openmaas.demo import load_demo
    except ModuleNotFoundError as e:
        if e.name != "openmaas.demo":
            raise
        raise Unavailable("demo content is not part of this installation") from e
    with platform(ctx) as p:
        p.prepare()
        summary = load_demo(p)
    if json:
        output.emit_json(summary)
    else:
        output.details(summary, title="Demo loaded")


def register(app: typer.Typer, panel: str) -> None:
    app.command("server", rich_help_panel=panel)(server)
    app.add_typer(db, name="db", rich_help_panel=panel)
    app.add_typer(admin, name="admin", rich_help_panel=panel)
    app.command("gc", rich_help_panel=panel)(gc)
    app.add_typer(demo, name="demo", rich_help_panel=panel)
