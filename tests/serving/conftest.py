"""Serving tests use the registry tests' model files."""

from __future__ import annotations

from typing import Any

from tests.models.conftest import booster, cancer, model_txt  # noqa: F401


def deploy_upload(
    http: Any, token: str, project_id: int, name: str, filename: str, content: bytes
) -> dict[str, Any]:
    """A new model ``name`` whose one version is the uploaded file, serving alone on an
    endpoint of the same name; the version as the API returned it."""
    auth = {"Authorization": f"Bearer {token}"}
    model = http.post(f"/api/v1/projects/{project_id}/models", json={"name": name}, headers=auth)
    assert model.status_code == 201, model.text
    version = http.post(
        f"/api/v1/models/{model.json()['id']}/versions/upload",
        params={"filename": filename},
        content=content,
        headers=auth,
    )
    assert version.status_code == 201, version.text
    endpoint = http.post(
        f"/api/v1/projects/{project_id}/endpoints",
        json={"name": name, "targets": [{"version_id": version.json()["id"], "weight": 100}]},
        headers=auth,
    )
    assert endpoint.status_code == 201, endpoint.text
    return dict(version.json())
