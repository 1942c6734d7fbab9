"""Small data for the compression tests: scikit-learn's bundled sets, generated rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine


def _frame(loader: object) -> tuple[pd.DataFrame, np.ndarray]:
    X, y = loader(return_X_y=True, as_frame=True)  # type: ignore[operator]
    X = X.rename(columns=lambda c: str(c).replace(" ", "_")).copy()
    X.iloc[::7, 1] = np.nan  # missing values: imputed (or kept by LightGBM) in ONNX too
    return X, np.asarray(y)


@pytest.fixture(scope="session")
def binary() -> tuple[pd.DataFrame, np.ndarray]:
    return _frame(load_breast_cancer)


@pytest.fixture(scope="session")
def multiclass() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = _frame(load_wine)
    return X, np.asarray(["abc"[i] for i in y], dtype=object)  # string labels


@pytest.fixture(scope="session")
def regression() -> tuple[pd.DataFrame, np.ndarray]:
    return _frame(load_diabetes)
