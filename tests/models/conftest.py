"""Model files for registry and serving tests, made on the spot (nothing downloaded)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

# MLflow 3.x writes this MLmodel for a LightGBM Booster (trimmed to 3 inputs per line).
MLMODEL = """flavors:
  lightgbm:
    code: null
    data: model.lgb
    lgb_version: 4.7.0
    model_class: lightgbm.basic.Booster
    serialization_format: skops
  python_function:
    data: model.lgb
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.lightgbm
    python_version: 3.11.7
mlflow_version: 3.17.2
model_uuid: ddfb657fa86a4777b8522c7bd245049c
signature:
  inputs: '{inputs}'
  outputs: '[{{"type": "tensor", "tensor-spec": {{"dtype": "float64", "shape": [-1]}}}}]'
  params: null
"""


@pytest.fixture(scope="session")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def booster(cancer) -> lgb.Booster:  # type: ignore[no-untyped-def]
    X, y = cancer
    data = lgb.Dataset(X, y, feature_name=[f"f{i}" for i in range(X.shape[1])])
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 1, "num_threads": 1}
    return lgb.train(params, data, num_boost_round=30)


@pytest.fixture(scope="session")
def model_txt(booster: lgb.Booster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lgb") / "model.txt"
    booster.save_model(str(path))
    return path


def mlflow_zip(booster: lgb.Booster, n_features: int = 30) -> bytes:
    """An MLflow model folder for ``booster``, zipped as ``mlflow_model/...``."""
    inputs = json.dumps(
        [{"type": "double", "name": f"f{i}", "required": True} for i in range(n_features)]
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mlflow_model/MLmodel", MLMODEL.format(inputs=inputs))
        zf.writestr("mlflow_model/model.lgb", booster.model_to_string())
        zf.writestr("mlflow_model/requirements.txt", "mlflow==3.17.2\nlightgbm==4.7.0\n")
    return buf.getvalue()
