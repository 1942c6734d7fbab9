"""Serving tests use the registry tests' model files."""

from tests.models.conftest import booster, cancer, model_txt  # noqa: F401
