"""Turning an upload (one file, a zip/tar of a folder, or an MLflow model) into a
version directory in its flavour's layout, with a signature where one is known.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openmaas.errors import InvalidFile, InvalidInput
from openmaas.ml.flavors.archive import unpack
from openmaas.ml.flavors.predictor import FLAVORS, MAIN_FILE
from openmaas.ml.flavors.signature import Signature

SUFFIX_FLAVOR = {
    ".txt": "lightgbm",
    ".lgb": "lightgbm",
    ".onnx": "onnx",
    ".skops": "skops",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".joblib": "pickle",
}
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
MLMODEL = "MLmodel"


@dataclass
class Bundle:
    flavor: str
    directory: Path
    signature: Signature | None = None
    source: str = "upload"
    info: dict[str, Any] = field(default_factory=dict)


def _suffix(filename: str) -> str:
    lower = filename.lower()
    for s in ARCHIVE_SUFFIXES:
        if lower.endswith(s):
            return s
    return Path(lower).suffix


def prepare(
    upload: Path, filename: str, work: Path, *, flavor: str | None = None, max_bytes: int
) -> Bundle:
    """Lay ``upload`` out in ``work/version`` and say what it is."""
    suffix = _suffix(filename)
    if flavor is not None and flavor not in FLAVORS:
        raise InvalidInput(
            f"unknown model flavour {flavor!r}; use one of {', '.join(FLAVORS)}",
            details={"field": "flavor"},
        )
    out = work / "version"
    out.mkdir(parents=True)
    if suffix in ARCHIVE_SUFFIXES or (flavor is None and suffix not in SUFFIX_FLAVOR):
        if suffix not in ARCHIVE_SUFFIXES:
            raise InvalidInput(
                f"cannot tell the model format of {filename!r}: upload model.txt (LightGBM), "
                "*.onnx, *.skops, or a .zip/.tar.gz of a model folder or an MLflow model, "
                "or name the flavour",
                details={"field": "filename"},
            )
        root = unpack(upload, work / "unpacked", max_bytes=max_bytes)
        if (root / MLMODEL).is_file():
            return _from_mlflow(root, out)
        return _from_folder(root, out, flavor)
    chosen = flavor or SUFFIX_FLAVOR[suffix]
    if chosen == "pipeline":
        raise InvalidInput(
            "a pipeline is a folder: upload it as a .zip or .tar.gz", details={"field": "flavor"}
        )
    shutil.move(upload, out / MAIN_FILE[chosen])
    return Bundle(chosen, out)


def _from_folder(root: Path, out: Path, flavor: str | None) -> Bundle:
    found = [f for f in FLAVORS if (root / MAIN_FILE[f]).is_file()]
    if flavor is not None:
        found = [flavor] if flavor in found else []
    if len(found) != 1:
        wanted = ", ".join(MAIN_FILE.values())
        raise InvalidFile(
            f"the archive must hold exactly one model main file ({wanted}) or an MLmodel"
            + (f"; it holds {', '.join(MAIN_FILE[f] for f in found)}" if found else "")
        )
    chosen = found[0]
    if chosen == "pipeline":
        shutil.copytree(root, out, dirs_exist_ok=True)
    else:
        shutil.copy2(root / MAIN_FILE[chosen], out / MAIN_FILE[chosen])
    return Bundle(chosen, out)


def _from_mlflow(root: Path, out: Path) -> Bundle:
    """An MLflow model folder with the lightgbm or sklearn flavour."""
    import yaml

    try:
        meta = yaml.safe_load((root / MLMODEL).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InvalidFile(f"MLmodel is not valid YAML: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise InvalidFile("MLmodel has no 'flavors' section")
    flavors = meta["flavors"]
    info: dict[str, Any] = {
        "mlflow_version": meta.get("mlflow_version"),
        "model_uuid": meta.get("model_uuid"),
        "run_id": meta.get("run_id"),
    }
    if "lightgbm" in flavors:
        conf = flavors["lightgbm"] or {}
        data = _member(root, conf.get("data", "model.lgb"))
        model_class = str(conf.get("model_class", "lightgbm.basic.Booster"))
        info["flavor"] = "lightgbm"
        if model_class == "lightgbm.basic.Booster":
            shutil.copy2(data, out / MAIN_FILE["lightgbm"])
            chosen = "lightgbm"
        else:
            chosen = _serialized(conf, data, out)
    elif "sklearn" in flavors:
        conf = flavors["sklearn"] or {}
        data = _member(root, conf.get("pickled_model", "model.pkl"))
        info["flavor"] = "sklearn"
        chosen = _serialized(conf, data, out)
    else:
        raise InvalidFile(
            f"MLmodel has flavours {', '.join(map(str, flavors))}; "
            "only 'lightgbm' and 'sklearn' can be imported"
        )
    signature = None
    sig = meta.get("signature")
    if isinstance(sig, dict) and sig.get("inputs"):
        outputs = {"mlflow": sig.get("outputs")} if sig.get("outputs") else {}
        signature = Signature.from_mlflow(sig["inputs"], outputs)
    return Bundle(chosen, out, signature, source="mlflow", info=info)


def _serialized(conf: dict[str, Any], data: Path, out: Path) -> str:
    fmt = str(conf.get("serialization_format", "cloudpickle"))
    if fmt == "skops":
        shutil.copy2(data, out / MAIN_FILE["skops"])
        return "skops"
    shutil.copy2(data, out / MAIN_FILE["pickle"])
    return "pickle"


def _member(root: Path, name: Any) -> Path:
    if not isinstance(name, str) or not name or ".." in Path(name).parts:
        raise InvalidFile(f"MLmodel names an invalid data file {name!r}")
    path = root / name
    if path.is_dir():  # sklearn/lightgbm flavours may name a folder holding the file
        files = [p for p in path.iterdir() if p.is_file()]
        if len(files) != 1:
            raise InvalidFile(f"MLmodel data folder {name!r} must hold one file")
        path = files[0]
    if not path.is_file():
        raise InvalidFile(f"MLmodel names the data file {name!r}, which the archive lacks")
    return path
