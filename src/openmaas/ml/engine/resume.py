"""Fold payloads: everything a run keeps of a finished fold, as one zip archive.

Members: ``fold.json`` (the fold's record, with the run fingerprint and the
model directories it carries), ``predictions.parquet`` (absent for the final
model) and the files of those model directories under ``models/``. Nothing in
a payload is executable: JSON, Parquet and the model formats of
:mod:`openmaas.ml.catalog.persist`. Unpacking refuses member names outside
the declared model directories (absolute paths, ``..``).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from openmaas.errors import InvalidFile, InvalidInput

__all__ = ["pack", "unpack"]

_RECORD = "fold.json"
_PREDICTIONS = "predictions.parquet"


def pack(
    out_dir: Path, record: dict[str, Any], predictions: pd.DataFrame | None, models: list[str]
) -> bytes:
    """A payload of ``record``, ``predictions`` and the ``models`` directories of ``out_dir``."""
    buffer = io.BytesIO()
    # level 1: model text still shrinks several-fold, at a fraction of the default's time
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(_RECORD, json.dumps({**record, "models": models}, sort_keys=True))
        if predictions is not None:
            table = io.BytesIO()
            predictions.to_parquet(table, index=False)
            archive.writestr(_PREDICTIONS, table.getvalue())
        for model in models:
            for path in sorted((out_dir / model).rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(out_dir).as_posix())
    return buffer.getvalue()


def unpack(
    payload: bytes, out_dir: Path, *, fingerprint: str, what: str
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The record and predictions of a payload of the run ``fingerprint``; its model
    directories are written to ``out_dir`` (replacing what is there).

    A payload of another run is refused before anything is written; ``what``
    names the payload in messages.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        with archive:
            record = json.loads(archive.read(_RECORD))
            if record.get("fingerprint") != fingerprint:
                raise InvalidInput(
                    f"{what} was produced by a different run (task, data, splits, algorithm, "
                    "parameters, seed or parent differ); start the run afresh"
                )
            models = [str(m) for m in record["models"]]
            _check_models(models)
            members = [m for m in archive.infolist() if not m.is_dir()]
            for member in members:
                _check_member(member.filename, models)
            predictions = None
            if _PREDICTIONS in archive.namelist():
                predictions = pd.read_parquet(io.BytesIO(archive.read(_PREDICTIONS)))
            for model in models:
                shutil.rmtree(out_dir / model, ignore_errors=True)
            for member in members:
                if member.filename.startswith("models/"):
                    target = out_dir / member.filename
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError) as e:
        raise InvalidFile(f"cannot read the payload of {what}: {e}") from e
    return record, predictions


def _check_models(models: list[str]) -> None:
    for model in models:
        path = PurePosixPath(model)
        if path.is_absolute() or ".." in path.parts or path.parts[:1] != ("models",):
            raise InvalidFile(f"a completed fold's payload names a model directory {model!r}")


def _check_member(name: str, models: list[str]) -> None:
    if name in (_RECORD, _PREDICTIONS):
        return
    path = PurePosixPath(name)
    unsafe = path.is_absolute() or ".." in path.parts or "\\" in name
    if unsafe or not any(path.is_relative_to(model) for model in models):
        raise InvalidFile(f"a completed fold's payload holds an unexpected file {name!r}")
