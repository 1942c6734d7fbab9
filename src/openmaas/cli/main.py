"""The ``openmaas`` command: global options, the command tree, one error boundary.

Remote commands speak to the server through the SDK only; their client comes
from :func:`make_client`, the one place tests swap for an in-process server.
Local commands (``db``, ``gc``, ``admin``, ``server``, ``demo``) act on the
stores configured by ``OPENMAAS_*`` through :func:`make_platform`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import pydantic
import typer
from typer.core import TyperGroup

from openmaas import __version__
from openmaas.cli import (
    admin,
    algorithms,
    auth,
    credentials,
    datasets,
    endpoints,
    models,
    orgs,
    output,
    projects,
    runs,
    scoring,
    serve,
    tasks,
    tokens,
    users,
    worker,
)
from openmaas.cli.session import Session
from openmaas.client import Client
from openmaas.config import Settings
from openmaas.errors import OpenMaaSError, RateLimited

if TYPE_CHECKING:
    from openmaas.domain.context import Platform


def make_client(url: str, token: str | None) -> Client:
    """The SDK client remote commands use (tests replace this function)."""
    return Client(url, token)


def make_platform() -> Platform:
    """The locally configured stores that local commands use."""
    from openmaas.domain.context import Platform

    return Platform(Settings())


def _describe(e: OpenMaaSError, ctx: typer.Context) -> str:
    message = f"{e.message} ({e.code})"
    if isinstance(e, RateLimited):
        message += f"; retry in {e.retry_after:g} s"
    session = ctx.find_object(Session)
    no_token = session is not None and session.token is None
    if e.code == "unauthenticated" and no_token and ctx.invoked_subcommand != "login":
        message += "; run `openmaas login` or set OPENMAAS_TOKEN"
    return message


class CliGroup(TyperGroup):
    """Turns expected failures into one red line on stderr and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except OpenMaaSError as e:
            output.error(_describe(e, ctx))
        except (httpx.TransportError, httpx.InvalidURL) as e:
            session = ctx.find_object(Session)
            where = session.url if session else "the server"
            output.error(f"cannot reach {where}: {e or type(e).__name__}")
        except json.JSONDecodeError:
            session = ctx.find_object(Session)
            where = session.url if session else "the server"
            output.error(f"{where} did not answer with JSON: is it an OpenMaaS server?")
        except pydantic.ValidationError as e:
            problems = "; ".join(
                f"OPENMAAS_{'_'.join(str(x) for x in err['loc']).upper()}: {err['msg']}"
                for err in e.errors()
            )
            output.error(f"invalid configuration: {problems}")
        except OSError as e:
            output.error(str(e))
        raise typer.Exit(1)


app = typer.Typer(
    cls=CliGroup,
    name="openmaas",
    help="OpenMaaS: share datasets, define benchmark tasks, train and serve models.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"openmaas {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Server URL. (default: $OPENMAAS_URL, else http://127.0.0.1:8000)",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="API token. (default: $OPENMAAS_TOKEN, else the one saved by "
            "`openmaas login` for this URL)",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    settings = Settings()
    url = (url or settings.url).rstrip("/")
    if token:
        source = "--token"
    elif settings.token:
        token, source = settings.token, "OPENMAAS_TOKEN"
    else:
        token = credentials.token_for(url)
        source = "credentials file" if token else "none"
    # Looked up here, at call time, so that a replaced make_client is the one used.
    session = Session(url, token, source, make_client, make_platform)
    ctx.obj = session
    ctx.call_on_close(session.close)


auth.register(app, panel="Account")
app.add_typer(users.app, name="user", rich_help_panel="Account")
app.add_typer(tokens.app, name="token", rich_help_panel="Account")
app.add_typer(orgs.app, name="org", rich_help_panel="Collaboration")
app.add_typer(projects.app, name="project", rich_help_panel="Collaboration")
app.add_typer(datasets.app, name="dataset", rich_help_panel="Data and tasks")
app.add_typer(tasks.app, name="task", rich_help_panel="Data and tasks")
app.add_typer(algorithms.app, name="algo", rich_help_panel="Training")
app.add_typer(runs.app, name="run", rich_help_panel="Training")
app.command("leaderboard", rich_help_panel="Training")(runs.leaderboard)
app.add_typer(models.app, name="model", rich_help_panel="Models")
app.command("score", rich_help_panel="Models")(scoring.score)
app.add_typer(endpoints.app, name="endpoint", rich_help_panel="Models")
LOCAL_PANEL = "Server administration (local, no server needed)"
admin.register(app, panel=LOCAL_PANEL)
app.command("worker", rich_help_panel=LOCAL_PANEL)(worker.worker)
app.command("serve-endpoint", rich_help_panel=LOCAL_PANEL)(serve.serve_endpoint)
