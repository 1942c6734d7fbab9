"""The whole dataset/task path on an S3 artifact store (a real S3 API from moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from openmaas.api.app import create_app
from openmaas.config import Settings
from openmaas.domain.blobs import gc
from openmaas.domain.context import Platform
from openmaas.domain.identity import bootstrap_admin
from tests.conftest import sdk
from tests.s3 import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_platform(tmp_path: Path, s3_server: S3Server) -> Iterator[Platform]:
    prefix = f"s3://{s3_server.bucket}/{tmp_path.name}"
    settings = Settings(
        home=tmp_path,
        artifact_url=prefix,
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        s3_region="us-east-1",
    )
    platform = Platform(settings)
    platform.prepare()
    yield platform
    platform.store.dispose()


def test_datasets_and_tasks_on_s3(s3_platform: Platform) -> None:
    token = bootstrap_admin(s3_platform).token
    with TestClient(create_app(s3_platform, prepare=False)) as http:
        client = sdk(http, token)
        client.orgs.create("lab")
        project = client.projects.create("lab", "p")
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"x": rng.normal(size=100), "y": rng.choice(["a", "b"], 100)})
        ds = client.datasets.upload(project, frame, name="toy", target="y")
        client.datasets.append(ds, frame.head(10))
        pd.testing.assert_frame_equal(client.datasets.to_pandas(ds, 1), frame)
        task = client.tasks.create(project, "toy", ds, type="binary", target="y")
        assert len(client.tasks.splits(task)) == 110
        client.datasets.update(ds, description="on s3")
        assert client.datasets.profile(ds, 2)["n_rows"] == 110
    # Nothing is garbage while everything is referenced.
    assert gc(s3_platform, grace=timedelta(0), dry_run=True) == []
