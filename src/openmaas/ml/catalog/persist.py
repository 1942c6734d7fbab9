"""Saving fitted models and pipelines without pickle.

scikit-learn objects go through skops, loaded with ``trusted`` set to an
explicit allowlist of type names (never ``trusted=True``): a file naming any
other type is refused before anything in it is built. Each algorithm keeps its
own allowlist next to its code; :data:`PREPROCESSOR_TYPES` covers
:mod:`openmaas.ml.preprocessing`. A pipeline directory holds::

    pipeline.json          {"format": 1, "algorithm": name, "preprocessing": mode}
    preprocessor.skops     absent when the mode is "none"
    model/                 whatever the algorithm's ``save`` writes

skops is imported on first use (it takes seconds to import).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from openmaas.errors import InvalidFile

__all__ = [
    "PREPROCESSOR_TYPES",
    "SKLEARN_TREE_TYPES",
    "dump_skops",
    "load_pipeline",
    "load_skops",
    "read_json",
    "save_pipeline",
    "write_json",
]

# skops already trusts numpy arrays and scikit-learn's estimators; these it flags
# although fitted models hold them. Anything else must be named by the caller.
_COMMON_TYPES = frozenset({"numpy.dtype"})

SKLEARN_TREE_TYPES = frozenset({"sklearn.tree._tree.Tree"})

PREPROCESSOR_TYPES = frozenset(
    {
        "openmaas.ml.preprocessing.TabularPreprocessor",
        "openmaas.ml.preprocessing.ToFloat",
        "openmaas.ml.preprocessing.MedianImputer",
        "openmaas.ml.preprocessing.ToCategory",
        "openmaas.ml.preprocessing.DatetimeFeatures",
        "openmaas.ml.preprocessing.TextFeatures",
        "openmaas.ml.preprocessing.ShiftCodes",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.pipeline.Pipeline",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.impute._base.MissingIndicator",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
    }
)


def dump_skops(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)


def load_skops(path: Path, allowed: Iterable[str]) -> Any:
    """Load ``path`` if every type it names is in ``allowed`` (or trusted by skops)."""
    import skops.io as sio

    allowed = frozenset(allowed) | _COMMON_TYPES
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # a corrupt or foreign file
        raise InvalidFile(f"{path.name} is not a readable skops file: {e}") from e
    refused = sorted(set(untrusted) - allowed)
    if refused:
        raise InvalidFile(
            f"{path.name} holds types outside the allowlist: {', '.join(refused)}",
            details={"file": path.name, "types": refused},
        )
    return sio.load(path, trusted=untrusted)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON; numpy scalars (e.g. in ``get_params()``) become Python ones."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InvalidFile(f"cannot read {path.name}: {e}") from e
    if not isinstance(data, dict):
        raise InvalidFile(f"{path.name} must hold a JSON object")
    return data


def save_pipeline(pipe: Pipeline, directory: Path) -> None:
    """Write a fitted ``Pipeline(prep, model)`` from ``make_pipeline`` to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    prep, model = pipe.steps[0][1], pipe.steps[-1][1]
    mode = "none" if prep in ("passthrough", None) else prep.mode
    write_json(
        directory / "pipeline.json",
        {"format": 1, "algorithm": model.name, "preprocessing": mode},
    )
    if mode != "none":
        dump_skops(prep, directory / "preprocessor.skops")
    model.save(directory / "model")


def load_pipeline(directory: Path) -> Pipeline:
    """Read a pipeline written by :func:`save_pipeline`; no code runs from the files."""
    from openmaas.ml.catalog.registry import get_algorithm

    directory = Path(directory)
    manifest = read_json(directory / "pipeline.json")
    if manifest.get("format") != 1:
        raise InvalidFile(f"unsupported pipeline format {manifest.get('format')!r}")
    model = get_algorithm(str(manifest["algorithm"])).load(directory / "model")
    if manifest["preprocessing"] == "none":
        prep: Any = "passthrough"
    else:
        prep = load_skops(directory / "preprocessor.skops", PREPROCESSOR_TYPES)
    return Pipeline([("prep", prep), ("model", model)])
