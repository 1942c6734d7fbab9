"""``client.models``: the model registry, and models loaded on this machine.

    model = client.models.create("acme/churn", "churn", description="Who leaves next month")
    client.models.upload(model, "model.txt")              # LightGBM text, *.onnx, *.skops
    client.models.upload(model, "mlflow_model/")          # a folder, zipped on the fly
    client.models.register_run(model, run)                # a run's final model
    client.models.set_alias(model, "production", 2)
    churn = client.models.load("churn@production")
    churn.predict(frame), churn.predict_proba(frame)

A model is named by its id, a :class:`Model`, ``"name"`` or ``"org/project/name"``;
a version by a reference ``"name@3"``, ``"name@production"`` (``org/project/``
in front when several projects have a model of that name) or a :class:`ModelVersion`.
"""

from __future__ import annotations

import builtins
import getpass
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from openmaas.client._http import Http, Progress, q
from openmaas.client.local_model import LocalModel
from openmaas.client.models import Model, ModelVersion, Page, Record, Run
from openmaas.client.resources import ProjectRef, Projects
from openmaas.client.transforms import TransformJob
from openmaas.errors import InvalidFile, InvalidInput, NotFound, PermissionDenied

ModelRef = int | str | Model | ModelVersion
VersionRef = str | ModelVersion
_REF = re.compile(r"^(?:(?P<org>[^/@]+)/(?P<project>[^/@]+)/)?(?P<name>[^/@]+)(?:@(?P<at>.+))?$")
_PAGE = 1000  # the server's largest page


def default_cache_dir() -> Path:
    """Per user, so that nobody else's files are taken for a model (they are re-hashed too)."""
    user = os.getuid() if hasattr(os, "getuid") else getpass.getuser()
    return Path(tempfile.gettempdir()) / f"openmaas-models-{user}"


def version_digest(version: ModelVersion) -> str:
    """One hash of a version's flavour and files: its cache key (equal files, equal key)."""
    h = hashlib.sha256(str(version.flavor).encode())
    for f in sorted(version.files, key=lambda f: f["path"]):
        h.update(f"\n{f['path']}\t{f['digest']}".encode())
    return h.hexdigest()


def _safe_path(path: str) -> PurePosixPath:
    """A file path from the server, refused if it could land outside the download folder."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise InvalidFile(f"the server sent an unsafe model file path {path!r}")
    return p


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _intact(directory: Path, version: ModelVersion) -> bool:
    """Whether ``directory`` holds exactly the version's files, byte for byte."""
    try:
        return all(
            _file_sha256(directory.joinpath(*_safe_path(f["path"]).parts)) == f["digest"]
            for f in version.files
        )
    except OSError:
        return False


def _zip_folder(folder: Path, dest: Path) -> Path:
    """``folder``'s files at the root of a zip (the server steps into a lone top folder)."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                zf.write(path, path.relative_to(folder).as_posix())
    return dest


def _signature_param(signature: dict[str, Any] | builtins.list[str] | None) -> str | None:
    if signature is None:
        return None
    if isinstance(signature, list | tuple):
        signature = {"inputs": [{"name": str(n)} for n in signature]}
    return json.dumps(signature)


class Models:
    """Registered models, their versions and aliases; :meth:`load` predicts locally."""

    def __init__(self, http: Http, projects: Projects | None = None) -> None:
        self._http = http
        self._projects = projects or Projects(http)

    # Models ----------------------------------------------------------------------------

    def create(
        self,
        project: ProjectRef,
        name: str,
        *,
        description: str = "",
        intended_use: str = "",
        licence: str | None = None,
        citation: str | None = None,
        tags: builtins.list[str] | None = None,
    ) -> Model:
        """Register a model name in a project, with its card; versions come next."""
        body = {
            "name": name,
            "description": description,
            "intended_use": intended_use,
            "licence": licence,
            "citation": citation,
            "tags": tags or [],
        }
        path = f"/projects/{self._projects.resolve(project)}/models"
        return Model(self._http.post(path, json=body))

    def list(
        self,
        *,
        project: ProjectRef | None = None,
        q: str | None = None,
        tag: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Model]:
        """Models you can read, newest first, by name substring and tag."""
        data = self._http.get(
            "/models",
            project_id=None if project is None else self._projects.resolve(project),
            q=q,
            tag=tag,
            limit=limit,
            offset=offset,
        )
        return Page.of(data, Model)

    def get(self, model: ModelRef) -> Model:
        """A model by id, ``"name"`` or ``"org/project/name"`` (a ``@version`` is ignored)."""
        if isinstance(model, str) and not model.isdigit():
            return self._find(model)
        return Model(self._http.get(f"/models/{self._model_id(model)}"))

    def update(
        self,
        model: ModelRef,
        *,
        description: str | None = None,
        intended_use: str | None = None,
        licence: str | None = None,
        citation: str | None = None,
        tags: builtins.list[str] | None = None,
    ) -> Model:
        """Edit the model card; fields left ``None`` keep their value."""
        fields = {
            "description": description,
            "intended_use": intended_use,
            "licence": licence,
            "citation": citation,
            "tags": tags,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        return Model(self._http.patch(f"/models/{self._model_id(model)}", json=body))

    def delete(self, model: ModelRef) -> None:
        """Delete a model and its versions (refused while one is deployed)."""
        self._http.delete(f"/models/{self._model_id(model)}")

    def _model_id(self, model: ModelRef) -> int:
        if isinstance(model, ModelVersion):
            return int(model.model_id)
        if isinstance(model, Model):
            return int(model.id)
        if isinstance(model, int):
            return model
        if isinstance(model, str) and model.isdigit():
            return int(model)
        return int(self._find(model).id)

    def _find(self, ref: str) -> Model:
        m = _REF.match(ref.strip())
        if m is None:
            raise InvalidInput(f"invalid model {ref!r}: use an id, name or org/project/name")
        name = m["name"]
        project = None if m["org"] is None else self._projects.resolve(f"{m['org']}/{m['project']}")
        found = [x for x in self._all("/models", project_id=project, q=name) if x["name"] == name]
        if not found:
            raise NotFound(f"model {name!r} not found")
        if len(found) > 1:
            where = ", ".join(sorted(x["project"] for x in found))
            raise InvalidInput(
                f"several projects have a model {name!r} ({where}); write org/project/name"
            )
        return Model(found[0])

    def _all(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._http.get(path, **params, limit=_PAGE, offset=offset)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    # Versions --------------------------------------------------------------------------

    def register_run(self, model: ModelRef, run: int | Run, description: str = "") -> ModelVersion:
        """A new version from a succeeded run's final model (its files are shared, not copied)."""
        body = {"run_id": run if isinstance(run, int) else int(run.id), "description": description}
        path = f"/models/{self._model_id(model)}/versions"
        return ModelVersion(self._http.post(path, json=body))

    def upload(
        self,
        model: ModelRef,
        path: str | os.PathLike[str],
        *,
        flavor: str | None = None,
        signature: dict[str, Any] | builtins.list[str] | None = None,
        description: str = "",
        progress: Progress | None = None,
    ) -> ModelVersion:
        """A new version from a file (``model.txt``, ``*.onnx``, ``*.skops``), an archive, or
        a folder (a model folder or an MLflow model), zipped into a temporary file first.

        ``signature``: ``{"inputs": [{"name", "kind"}, ...]}`` or a list of column names;
        by default it comes from an MLflow ``MLmodel`` or from the model itself. The
        server loads the model before keeping it, so a file that does not load is refused.
        """
        source = Path(path)
        params = {
            "flavor": flavor,
            "signature": _signature_param(signature),
            "description": description,
        }
        url = f"/models/{self._model_id(model)}/versions/upload"
        if not source.is_dir():
            params["filename"] = source.name
            return ModelVersion(self._http.upload(url, source, params, progress))
        name = source.resolve().name or "model"
        with tempfile.TemporaryDirectory(prefix="openmaas-upload-") as tmp:
            archive = _zip_folder(source, Path(tmp) / f"{name}.zip")
            params["filename"] = archive.name
            return ModelVersion(self._http.upload(url, archive, params, progress))

    def versions(self, model: ModelRef, *, limit: int = 50, offset: int = 0) -> Page[ModelVersion]:
        """A model's versions, newest first."""
        data = self._http.get(
            f"/models/{self._model_id(model)}/versions", limit=limit, offset=offset
        )
        return Page.of(data, ModelVersion)

    def version(self, model: ModelRef, version: int) -> ModelVersion:
        return ModelVersion(self._http.get(f"/models/{self._model_id(model)}/versions/{version}"))

    def resolve(self, ref: VersionRef) -> ModelVersion:
        """``"name"`` (the latest version), ``"name@3"``, ``"name@production"``, with
        ``"org/project/"`` in front when the name alone is ambiguous."""
        if isinstance(ref, ModelVersion):
            return ref
        return ModelVersion(self._http.get("/models/resolve", ref=ref))

    def transform(self, ref: VersionRef, kind: str, **params: Any) -> TransformJob:
        """Queue a compression of a version into a new one: ``kind`` ``onnx`` (export),
        ``quantize`` (int8, a dnn) or ``distill`` (``student="lightgbm"`` or ``"mlp"``,
        ``student_params``); ``task_id`` names the task to evaluate (or distill) on when
        the version has none. ``.wait()`` gives the new version; its ``transform`` holds
        the report (size, latency per row, metric before and after)."""
        v = self.resolve(ref)
        path = f"/models/{v.model_id}/versions/{v.version}/transforms"
        return TransformJob(self._http.post(path, json={"kind": kind, "params": params}), self)

    # Aliases and history ---------------------------------------------------------------

    def set_alias(self, model: ModelRef, alias: str, version: int) -> Model:
        """Point ``alias`` at a version; ``production`` needs a maintainer of the project."""
        path = f"/models/{self._model_id(model)}/aliases/{q(alias)}"
        return Model(self._http.put(path, json={"version": version}))

    def remove_alias(self, model: ModelRef, alias: str) -> Model:
        return Model(self._http.delete(f"/models/{self._model_id(model)}/aliases/{q(alias)}"))

    def history(self, model: ModelRef, *, limit: int = 50, offset: int = 0) -> Page[Record]:
        """Every version, alias and card change, newest first: ``at``, ``actor``, ``action``,
        ``version``, ``alias``, ``details``."""
        data = self._http.get(
            f"/models/{self._model_id(model)}/history", limit=limit, offset=offset
        )
        return Page.of(data, Record)

    # Files and local models ------------------------------------------------------------

    def download(
        self,
        ref: VersionRef,
        dest_dir: str | os.PathLike[str],
        progress: Progress | None = None,
    ) -> Path:
        """Save every file of a version under ``dest_dir``, each checked against its SHA-256.

        Each file is written under a temporary name, then renamed. ``progress(done, total)``
        counts the bytes of all files together.
        """
        version = self.resolve(ref)
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        total, base = int(version.size_bytes), 0
        for f in version.files:
            target = dest.joinpath(*_safe_path(f["path"]).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            url = f"/models/{version.model_id}/versions/{version.version}/files/" + "/".join(
                q(p) for p in f["path"].split("/")
            )
            offset = base

            def step(done: int, _: int | None, offset: int = offset) -> None:
                if progress is not None:
                    progress(offset + done, total)

            try:
                with part.open("wb") as out:
                    self._http.download(url, out, {}, step, sha256=f["digest"])
                part.replace(target)
            finally:
                part.unlink(missing_ok=True)
            base += int(f["size_bytes"])
        return dest

    def load(
        self,
        ref: VersionRef,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        allow_pickle: bool = False,
    ) -> LocalModel:
        """A version, downloaded (once per content: files are cached by their digests) and
        loaded here, ready to ``predict`` on a DataFrame with its signature's columns or
        on a 2-D array with them in order.

        A pickle version runs code from the file when it is loaded: pass
        ``allow_pickle=True`` only for models whose authors you trust.
        """
        from openmaas.ml import flavors

        version = self.resolve(ref)
        if version.flavor == "pickle" and not allow_pickle:
            raise InvalidInput(
                f"{version.ref} is a pickle, and loading a pickle runs code from it; "
                "pass allow_pickle=True if you trust its authors"
            )
        directory = self._cached(version, Path(cache_dir) if cache_dir else default_cache_dir())
        predictor = flavors.load(version.flavor, directory, version.input_names)
        return LocalModel(version, directory, predictor)

    def _cached(self, version: ModelVersion, cache: Path) -> Path:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and cache.stat().st_uid != os.getuid():
            raise PermissionDenied(
                f"the model cache {cache} belongs to another user; pass cache_dir=..."
            )
        final = cache / version_digest(version)
        if final.is_dir():
            if _intact(final, version):
                return final
            shutil.rmtree(final, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".part-", dir=cache))
        try:
            self.download(version, work)
            try:
                work.rename(final)
            except OSError:  # another process cached it first
                if not _intact(final, version):
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return final


__all__ = ["Models", "default_cache_dir", "version_digest"]
