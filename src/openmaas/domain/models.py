"""The model registry: named models, immutable versions, aliases, a card and a history.

A version is made from a run (its final model, sharing the run's blobs), from
an upload in a safe format (LightGBM text, ONNX, skops, a model folder), from
an MLflow model folder, or by a transform of another version (compression).
Every version is loaded once when it is registered, so a file that does not
load, or does not fit its signature, is refused before anything is stored.

Pickles run code when loaded: they are refused unless the operator enabled
``allow_pickle_models``, and then only maintainers may upload one; they are
never loaded at registration.

Who may do what: contributors register models and versions and move the
``staging``/``archived``/custom aliases; pointing ``production`` at a version
(promotion) needs a maintainer. Every change lands in the model's history and
the audit log.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openmaas.domain import audit
from openmaas.domain.context import Ctx, Platform
from openmaas.domain.names import check_name, check_tags
from openmaas.domain.pages import Page, check_window, page_of
from openmaas.domain.policy import Action
from openmaas.domain.projects import authorize
from openmaas.errors import Conflict, InvalidFile, InvalidInput, NotFound, PermissionDenied
from openmaas.ml import flavors
from openmaas.ml.flavors.bundle import Bundle, prepare
from openmaas.ml.flavors.signature import Signature
from openmaas.store.metadata.scoped import readable_projects
from openmaas.store.metadata.tables import (
    DatasetVersion,
    EndpointTarget,
    Model,
    ModelAlias,
    ModelEvent,
    ModelFile,
    ModelVersion,
    Organization,
    Project,
    Run,
    RunArtifact,
    Task,
    User,
)

STANDARD_ALIASES = ("staging", "production", "archived")
PROMOTION = "production"
SERVABLE_TASK_TYPES = ("binary", "multiclass", "regression", "multitarget", "anomaly")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_REF = re.compile(r"^(?:(?P<org>[^/@]+)/(?P<project>[^/@]+)/)?(?P<name>[^/@]+)(?:@(?P<at>.+))?$")
CARD_FIELDS = ("description", "intended_use", "licence", "citation")


@dataclass(frozen=True)
class ModelView:
    model: Model
    project: str  # "org/project"
    creator: str
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version number


@dataclass(frozen=True)
class VersionView:
    version: ModelVersion
    model: Model
    project: str
    creator: str
    aliases: list[str]
    files: list[ModelFile]

    @property
    def signature(self) -> Signature:
        return Signature.from_dict(self.version.signature)


@dataclass(frozen=True)
class Card:
    description: str | None = None
    intended_use: str | None = None
    licence: str | None = None
    citation: str | None = None
    tags: list[str] | None = None


# Loading and views ------------------------------------------------------------------


def _load(ctx: Ctx, s: Session, model_id: int, action: Action, *, kind: str = "model") -> Model:
    model = s.get(Model, model_id)
    if model is None:
        raise NotFound(f"{kind} not found")
    authorize(ctx, s, model.project_id, action, kind=kind, owner_id=model.created_by)
    return model


def _project_name(s: Session, project_id: int) -> str:
    row = s.execute(
        select(Organization.name, Project.name)
        .join(Project, Project.org_id == Organization.id)
        .where(Project.id == project_id)
    ).one()
    return f"{row[0]}/{row[1]}"


def _username(s: Session, user_id: int | None) -> str:
    if user_id is None:
        return ""
    return s.scalar(select(User.username).where(User.id == user_id)) or ""


def _aliases(s: Session, model_id: int) -> dict[str, int]:
    rows = s.execute(
        select(ModelAlias.alias, ModelVersion.version)
        .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)
        .where(ModelAlias.model_id == model_id)
        .order_by(ModelAlias.alias)
    ).all()
    return {a: v for a, v in rows}


def _model_view(s: Session, model: Model) -> ModelView:
    return ModelView(
        model, _project_name(s, model.project_id), _username(s, model.created_by),
        _aliases(s, model.id),
    )  # fmt: skip


def _version_view(s: Session, model: Model, version: ModelVersion) -> VersionView:
    aliases = list(
        s.scalars(
            select(ModelAlias.alias)
            .where(ModelAlias.version_id == version.id)
            .order_by(ModelAlias.alias)
        )
    )
    files = list(
        s.scalars(
            select(ModelFile).where(ModelFile.version_id == version.id).order_by(ModelFile.path)
        )
    )
    return VersionView(
        version, model, _project_name(s, model.project_id), _username(s, version.created_by),
        aliases, files,
    )  # fmt: skip


def _event(
    s: Session,
    ctx: Ctx,
    model: Model,
    action: str,
    *,
    version: int | None = None,
    alias: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """One line of the model's history, and the same change in the audit log."""
    details = details or {}
    s.add(
        ModelEvent(
            model_id=model.id, actor_id=ctx.principal.user_id, actor=ctx.principal.username,
            action=action, version=version, alias=alias, details=details,
        )
    )  # fmt: skip
    audit.record(
        s, ctx.principal, f"model.{action}", "model", model.id, project_id=model.project_id,
        details={"name": model.name, "version": version, "alias": alias, **details},
    )  # fmt: skip


# Models ---------------------------------------------------------------------------


def create_model(ctx: Ctx, project_id: int, name: str, card: Card | None = None) -> ModelView:
    check_name(name)
    card = card or Card()
    tags = check_tags(card.tags or [])
    try:
        with ctx.store.write() as s:
            authorize(ctx, s, project_id, Action.create, kind="project")
            exists = s.scalar(
                select(Model.id).where(Model.project_id == project_id, Model.name == name)
            )
            if exists:
                raise Conflict(f"model {name!r} already exists", details={"field": "name"})
            model = Model(
                project_id=project_id, name=name, tags=tags, created_by=ctx.principal.user_id,
                **{f: getattr(card, f) or ("" if f in ("description", "intended_use") else None)
                   for f in CARD_FIELDS},
            )  # fmt: skip
            s.add(model)
            s.flush()
            _event(s, ctx, model, "create")
            return _model_view(s, model)
    except IntegrityError as e:
        raise Conflict(f"model {name!r} already exists", details={"field": "name"}) from e


def get_model(ctx: Ctx, model_id: int) -> ModelView:
    with ctx.store.read() as s:
        return _model_view(s, _load(ctx, s, model_id, Action.read))


def list_models(
    ctx: Ctx,
    *,
    project_id: int | None = None,
    q: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[ModelView]:
    """Models the caller can read, newest first, by name substring and tag."""
    check_window(limit, offset)
    query = (
        select(Model)
        .join(Project, Project.id == Model.project_id)
        .where(readable_projects(ctx.principal))
    )
    if project_id is not None:
        query = query.where(Model.project_id == project_id)
    if q:
        query = query.where(Model.name.contains(q, autoescape=True))
    if tag:
        # Tags are ASCII names without quotes (check_tags): as a JSON string in the
        # stored array, '"tag"' matches that element and no other, on any database.
        quoted = f'"{tag.strip().lower()}"'
        query = query.where(cast(Model.tags, String).contains(quoted, autoescape=True))
    with ctx.store.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(Model.id.desc()).limit(limit).offset(offset))
        views = [_model_view(s, m) for m in rows]
    return page_of(views, total, limit, offset)


def update_card(ctx: Ctx, model_id: int, card: Card) -> ModelView:
    with ctx.store.write() as s:
        model = _load(ctx, s, model_id, Action.edit)
        changes: dict[str, Any] = {}
        for f in CARD_FIELDS:
            value = getattr(card, f)
            if value is not None:
                setattr(model, f, value)
                changes[f] = value
        if card.tags is not None:
            model.tags = check_tags(card.tags)
            changes["tags"] = model.tags
        model.updated_at = datetime.now(UTC)
        _event(s, ctx, model, "update", details={"fields": sorted(changes)})
        return _model_view(s, model)


def delete_model(ctx: Ctx, model_id: int) -> None:
    with ctx.store.write() as s:
        model = _load(ctx, s, model_id, Action.edit)
        deployed = s.scalar(
            select(func.count())
            .select_from(EndpointTarget)
            .join(ModelVersion, ModelVersion.id == EndpointTarget.version_id)
            .where(ModelVersion.model_id == model.id)
        )
        if deployed:
            raise Conflict(
                f"model {model.name!r} has versions deployed on endpoints; undeploy them first"
            )
        audit.record(
            s, ctx.principal, "model.delete", "model", model.id, project_id=model.project_id,
            details={"name": model.name},
        )  # fmt: skip
        s.delete(model)


# Versions -------------------------------------------------------------------------


def _new_version(
    ctx: Ctx,
    s: Session,
    model: Model,
    *,
    flavor: str,
    source: str,
    signature: Signature,
    files: list[tuple[str, str, int]],
    description: str = "",
    run_id: int | None = None,
    parent_id: int | None = None,
    task: Task | None = None,
    metrics: dict[str, Any] | None = None,
    transform: dict[str, Any] | None = None,
) -> ModelVersion:
    model.latest_version += 1
    model.updated_at = datetime.now(UTC)
    version = ModelVersion(
        model_id=model.id, version=model.latest_version, flavor=flavor, source=source,
        run_id=run_id, parent_id=parent_id,
        task_id=task.id if task else None,
        dataset_version_id=task.dataset_version_id if task else None,
        task_type=task.task_type if task else signature.outputs.get("task_type"),
        signature=signature.to_dict(), metrics=metrics or {}, transform=transform,
        description=description, size_bytes=sum(size for _, _, size in files),
        created_by=ctx.principal.user_id,
    )  # fmt: skip
    s.add(version)
    s.flush()
    s.add_all(ModelFile(version_id=version.id, path=p, digest=d, size_bytes=n) for p, d, n in files)
    _event(
        s, ctx, model, "version.create", version=version.version,
        details={"source": source, "flavor": flavor, "run_id": run_id},
    )  # fmt: skip
    return version


def version_from_run(ctx: Ctx, model_id: int, run_id: int, description: str = "") -> VersionView:
    """Register a succeeded platform run's final model (its files are shared, not copied)."""
    from openmaas.ml.data.schema import ColumnSchema
    from openmaas.ml.engine.columns import feature_columns
    from openmaas.ml.tasks import TaskSpec

    with ctx.store.read() as s:
        _load(ctx, s, model_id, Action.create)
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound("run not found", details={"field": "run_id"})
        authorize(ctx, s, run.project_id, Action.read, kind="run")
        if run.state != "succeeded" or run.kind != "platform":
            raise InvalidInput(
                f"run {run_id} has no trained model (it is a {run.state} {run.kind} run)",
                details={"field": "run_id"},
            )
        task = s.get(Task, run.task_id)
        assert task is not None
        if task.task_type not in SERVABLE_TASK_TYPES:
            raise InvalidInput(
                f"models of {task.task_type} tasks cannot be registered for serving yet; "
                f"supported: {', '.join(SERVABLE_TASK_TYPES)}",
                details={"field": "run_id"},
            )
        prefix = "models/final/"
        artifacts = s.scalars(
            select(RunArtifact).where(
                RunArtifact.run_id == run.id, RunArtifact.name.startswith(prefix)
            )
        ).all()
        if not artifacts:
            raise InvalidInput(f"run {run_id} kept no final model", details={"field": "run_id"})
        dv = s.get(DatasetVersion, task.dataset_version_id)
        assert dv is not None
        spec = TaskSpec.model_validate(task.spec)
        columns = feature_columns(spec, [ColumnSchema.from_dict(c) for c in dv.columns])
        files = [
            ModelFile(path=a.name[len(prefix) :], digest=a.digest, size_bytes=a.size_bytes)
            for a in artifacts
        ]
        metrics = {"metric": run.metric, "score": run.score, "score_std": run.score_std,
                   "metrics": run.metrics}  # fmt: skip
    outputs: dict[str, Any] = {"task_type": task.task_type, "targets": spec.target_columns}
    inputs = [{"name": c.name, "kind": c.kind} for c in columns]
    with _workdir(ctx.platform) as work:
        predictor = flavors.load("pipeline", materialize(ctx.platform, files, work), None)
        if predictor.classes is not None:
            outputs["classes"] = predictor.classes
    signature = Signature.from_dict({"inputs": inputs, "outputs": outputs})
    with ctx.store.write() as s:
        model = _load(ctx, s, model_id, Action.create)
        version = _new_version(
            ctx, s, model, flavor="pipeline", source="run", signature=signature,
            files=[(f.path, f.digest, f.size_bytes) for f in files], description=description,
            run_id=run_id, task=s.get(Task, task.id), metrics=metrics,
        )  # fmt: skip
        return _version_view(s, model, version)


def version_from_upload(
    ctx: Ctx,
    model_id: int,
    upload: Path,
    filename: str,
    *,
    flavor: str | None = None,
    signature: dict[str, Any] | None = None,
    description: str = "",
) -> VersionView:
    """Register an uploaded file or archive (an MLflow model folder included)."""
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.create)
    with _workdir(ctx.platform) as work:
        bundle = prepare(
            upload, filename, work, flavor=flavor, max_bytes=ctx.settings.max_upload_bytes
        )
        return add_version(ctx, model.id, bundle, signature=signature, description=description)


def add_version(
    ctx: Ctx,
    model_id: int,
    bundle: Bundle,
    *,
    signature: dict[str, Any] | Signature | None = None,
    description: str = "",
    parent_id: int | None = None,
    transform: dict[str, Any] | None = None,
) -> VersionView:
    """Check ``bundle`` loads and fits its signature, store its files, add the version."""
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.create)
        if bundle.flavor == "pickle":
            _check_pickle_allowed(ctx, s, model)
    sig = _signature_of(bundle, signature)
    if bundle.flavor != "pickle":
        predictor = flavors.load(bundle.flavor, bundle.directory, sig.names)
        _check_fits(predictor, sig)
        if predictor.classes is not None and "classes" not in sig.outputs:
            sig = Signature(sig.inputs, {**sig.outputs, "classes": predictor.classes})
    files = []
    for path in sorted(p for p in bundle.directory.rglob("*") if p.is_file()):
        info = ctx.artifacts.put_file(path)
        files.append((path.relative_to(bundle.directory).as_posix(), info.digest, info.size))
    with ctx.store.write() as s:
        model = _load(ctx, s, model_id, Action.create)
        parent = s.get(ModelVersion, parent_id) if parent_id else None
        version = _new_version(
            ctx, s, model, flavor=bundle.flavor, source=bundle.source, signature=sig,
            files=files, description=description, parent_id=parent_id,
            run_id=parent.run_id if parent else None,
            task=s.get(Task, parent.task_id) if parent and parent.task_id else None,
            metrics={"mlflow": bundle.info} if bundle.source == "mlflow" else None,
            transform=transform,
        )  # fmt: skip
        return _version_view(s, model, version)


def _check_pickle_allowed(ctx: Ctx, s: Session, model: Model) -> None:
    if not ctx.settings.allow_pickle_models:
        raise InvalidInput(
            "pickle models are disabled on this server (loading a pickle runs code); "
            "upload LightGBM text, ONNX, skops or a model folder instead",
            details={"field": "flavor"},
        )
    try:
        authorize(ctx, s, model.project_id, Action.manage, kind="model")
    except PermissionDenied as e:
        raise PermissionDenied(f"only maintainers may upload pickle models: {e}") from None


def _signature_of(bundle: Bundle, given: dict[str, Any] | Signature | None) -> Signature:
    if isinstance(given, Signature):
        return given
    if given is not None:
        return Signature.from_dict(given)
    if bundle.signature is not None:
        return bundle.signature
    if bundle.flavor == "pickle":
        raise InvalidInput(
            "a pickle model needs an explicit signature", details={"field": "signature"}
        )
    predictor = flavors.load(bundle.flavor, bundle.directory)
    names = predictor.feature_names
    if names is None and predictor.n_features is not None:
        names = [f"f{i}" for i in range(predictor.n_features)]
    if not names:
        raise InvalidInput(
            "cannot infer the model's input columns: give a signature",
            details={"field": "signature"},
        )
    return Signature.of_names(names)


def _check_fits(predictor: flavors.Predictor, sig: Signature) -> None:
    n = predictor.n_features
    if n is not None and n != len(sig.inputs):
        raise InvalidInput(
            f"the signature has {len(sig.inputs)} inputs but the model reads {n} features",
            details={"field": "signature"},
        )
    if predictor.matrix_input and not sig.numeric:
        bad = next(c for c in sig.inputs if c.kind not in ("numeric", "boolean"))
        raise InvalidInput(
            f"a {predictor.flavor} model reads numbers only; input {bad.name!r} is {bad.kind}",
            details={"field": "signature"},
        )


@contextmanager
def _workdir(platform: Platform) -> Iterator[Path]:
    tmp = platform.settings.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="model-", dir=tmp))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _version_row(s: Session, model: Model, number: int) -> ModelVersion:
    row = s.scalar(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == number
        )
    )
    if row is None:
        raise NotFound(f"model {model.name!r} has no version {number}")
    return row


def get_version(ctx: Ctx, model_id: int, number: int) -> VersionView:
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.read)
        return _version_view(s, model, _version_row(s, model, number))


def get_version_by_id(ctx: Ctx, version_id: int) -> VersionView:
    with ctx.store.read() as s:
        row = s.get(ModelVersion, version_id)
        if row is None:
            raise NotFound("model version not found")
        model = _load(ctx, s, row.model_id, Action.read, kind="model version")
        return _version_view(s, model, row)


def list_versions(
    ctx: Ctx, model_id: int, *, limit: int = 50, offset: int = 0
) -> Page[VersionView]:
    check_window(limit, offset)
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.read)
        query = select(ModelVersion).where(ModelVersion.model_id == model.id)
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = s.scalars(query.order_by(ModelVersion.version.desc()).limit(limit).offset(offset))
        return page_of([_version_view(s, model, v) for v in rows], total, limit, offset)


def resolve(ctx: Ctx, ref: str) -> VersionView:
    """``name``, ``name@3``, ``name@production`` or ``org/project/name@...`` -> a version.

    A bare name means the latest version; a name that several visible projects
    use must be qualified with ``org/project/``.
    """
    m = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if m is None:
        raise InvalidInput(
            f"invalid model reference {ref!r}; use name, name@version, name@alias "
            "or org/project/name@alias",
            details={"field": "ref"},
        )
    with ctx.store.read() as s:
        query = (
            select(Model)
            .join(Project, Project.id == Model.project_id)
            .where(readable_projects(ctx.principal), Model.name == m["name"])
        )
        if m["org"]:
            query = query.join(Organization, Organization.id == Project.org_id).where(
                Organization.name == m["org"], Project.name == m["project"]
            )
        models = s.scalars(query).all()
        if not models:
            raise NotFound(f"model {m['name']!r} not found")
        if len(models) > 1:
            where = ", ".join(sorted(_project_name(s, x.project_id) for x in models))
            raise InvalidInput(
                f"several projects have a model {m['name']!r} ({where}); write org/project/name",
                details={"field": "ref"},
            )
        model = models[0]
        at = m["at"]
        if at is None:
            number = model.latest_version
            if number == 0:
                raise NotFound(f"model {model.name!r} has no versions yet")
        elif at.isdigit():
            number = int(at)
        else:
            row = s.scalar(
                select(ModelVersion.version)
                .join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
                .where(ModelAlias.model_id == model.id, ModelAlias.alias == at)
            )
            if row is None:
                raise NotFound(f"model {model.name!r} has no alias {at!r}")
            number = row
        return _version_view(s, model, _version_row(s, model, number))


# Aliases and history --------------------------------------------------------------


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or alias.isdigit():
        raise InvalidInput(
            f"invalid alias {alias!r}: use 1-32 lowercase letters, digits, '_' or '-', "
            "starting with a letter",
            details={"field": "alias"},
        )
    return alias


def set_alias(ctx: Ctx, model_id: int, alias: str, number: int) -> ModelView:
    """Point ``alias`` at a version; ``production`` (promotion) needs a maintainer."""
    check_alias(alias)
    with ctx.store.write() as s:
        action = Action.manage if alias == PROMOTION else Action.create
        model = _load(ctx, s, model_id, action)
        version = _version_row(s, model, number)
        row = s.scalar(
            select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        )
        previous = None
        if row is None:
            s.add(
                ModelAlias(
                    model_id=model.id, alias=alias, version_id=version.id,
                    set_by=ctx.principal.user_id,
                )
            )  # fmt: skip
        else:
            previous = s.scalar(
                select(ModelVersion.version).where(ModelVersion.id == row.version_id)
            )
            row.version_id = version.id
            row.set_by = ctx.principal.user_id
            row.set_at = datetime.now(UTC)
        _event(
            s, ctx, model, "alias.set", version=number, alias=alias,
            details={"previous": previous},
        )  # fmt: skip
        s.flush()
        return _model_view(s, model)


def remove_alias(ctx: Ctx, model_id: int, alias: str) -> ModelView:
    check_alias(alias)
    with ctx.store.write() as s:
        action = Action.manage if alias == PROMOTION else Action.create
        model = _load(ctx, s, model_id, action)
        row = s.scalar(
            select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias)
        )
        if row is None:
            raise NotFound(f"model {model.name!r} has no alias {alias!r}")
        number = s.scalar(select(ModelVersion.version).where(ModelVersion.id == row.version_id))
        s.delete(row)
        _event(s, ctx, model, "alias.remove", version=number, alias=alias)
        s.flush()
        return _model_view(s, model)


def history(ctx: Ctx, model_id: int, *, limit: int = 50, offset: int = 0) -> Page[ModelEvent]:
    check_window(limit, offset)
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.read)
        query = select(ModelEvent).where(ModelEvent.model_id == model.id)
        total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(s.scalars(query.order_by(ModelEvent.id.desc()).limit(limit).offset(offset)))
        return page_of(rows, total, limit, offset)


# Files ----------------------------------------------------------------------------


def file_of(ctx: Ctx, model_id: int, number: int, path: str) -> ModelFile:
    with ctx.store.read() as s:
        model = _load(ctx, s, model_id, Action.read)
        version = _version_row(s, model, number)
        row = s.scalar(
            select(ModelFile).where(ModelFile.version_id == version.id, ModelFile.path == path)
        )
        if row is None:
            raise NotFound(f"version {number} of {model.name!r} has no file {path!r}")
        return row


def materialize(platform: Platform, files: list[ModelFile], dest: Path) -> Path:
    """Write a version's files under ``dest`` (paths were checked when stored)."""
    for f in files:
        target = dest.joinpath(*Path(f.path).parts)
        if not target.resolve().is_relative_to(dest.resolve()):
            raise InvalidFile(f"unsafe model file path {f.path!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            for chunk in platform.artifacts.iter_chunks(f.digest):
                out.write(chunk)
    return dest
