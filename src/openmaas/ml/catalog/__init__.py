"""The algorithm catalog: importing this package registers every algorithm.

scikit-learn and LightGBM algorithms register on import (their modules import
LightGBM and skops only when fitting or saving). Torch algorithms live in
``openmaas.ml.catalog.torch``, whose ``__init__`` must not import torch: it
declares each algorithm with ``register_lazy(name, "module:Class")`` so torch
(~1.3 s) is imported only when one is first looked up, never at API startup.
See :mod:`openmaas.ml.catalog.registry` for the lookups.
"""

from __future__ import annotations

import importlib.util

from openmaas.ml.catalog import ensemble, forest, gbdt, linear
from openmaas.ml.catalog.base import Algorithm, HyperParameter, LearningCurve, TrainingCallbacks
from openmaas.ml.catalog.registry import (
    algorithm_names,
    check_params,
    check_supports,
    coerce_params,
    get_algorithm,
    list_algorithms,
    register,
    register_lazy,
)

if importlib.util.find_spec("openmaas.ml.catalog.torch") is not None:
    importlib.import_module("openmaas.ml.catalog.torch")

__all__ = [
    "Algorithm",
    "HyperParameter",
    "LearningCurve",
    "TrainingCallbacks",
    "algorithm_names",
    "check_params",
    "check_supports",
    "coerce_params",
    "ensemble",
    "forest",
    "gbdt",
    "get_algorithm",
    "linear",
    "list_algorithms",
    "register",
    "register_lazy",
]
