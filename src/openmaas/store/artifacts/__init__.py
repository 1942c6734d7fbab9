"""Content-addressed artifact storage, and the URL schemes that open it.

``open_artifact_store(settings.resolved_artifact_url, settings.storage_options())``
gives the configured store: a plain path or ``file://`` URL opens a
``LocalArtifactStore``, ``s3://bucket/prefix`` an ``S3ArtifactStore``. Users type
these URLs, so an unknown scheme is an ``InvalidInput`` naming the known ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from openmaas.errors import InvalidInput
from openmaas.store.artifacts.base import ArtifactStore, BlobInfo, validate_digest
from openmaas.store.artifacts.gc import collect_garbage
from openmaas.store.artifacts.local import LocalArtifactStore

StoreFactory = Callable[[str, Mapping[str, Any] | None], ArtifactStore]

_SCHEMES: dict[str, StoreFactory] = {}


def register_artifact_scheme(scheme: str, factory: StoreFactory) -> None:
    """Make ``scheme://...`` URLs open stores built by ``factory(url, storage_options)``."""
    _SCHEMES[scheme.lower()] = factory


def open_artifact_store(
    url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> ArtifactStore:
    """The artifact store at ``url``: a local path, ``file://...`` or a registered scheme.

    ``storage_options`` are for remote backends; local stores ignore them, so
    ``Settings.storage_options()`` can always be passed.
    """
    text = os.fspath(url)
    scheme = urlsplit(text).scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return LocalArtifactStore(Path(text))
    factory = _SCHEMES.get(scheme)
    if factory is None:
        known = sorted(_SCHEMES)
        raise InvalidInput(
            f"unknown artifact store scheme {scheme!r}; "
            f"known schemes: {', '.join(known)} (or a plain local path)",
            details={"scheme": scheme, "known": known},
        )
    return factory(text, storage_options)


def _open_file(url: str, storage_options: Mapping[str, Any] | None) -> ArtifactStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidInput(
            f"invalid file URL {url!r}: only local paths (file:///path) are supported",
            details={"url": url},
        )
    return LocalArtifactStore(Path(url2pathname(parts.path)))


def _open_s3(url: str, storage_options: Mapping[str, Any] | None) -> ArtifactStore:
    from openmaas.store.artifacts.s3 import S3ArtifactStore  # imports s3fs: pay only if used

    return S3ArtifactStore(url, storage_options)


register_artifact_scheme("file", _open_file)
register_artifact_scheme("s3", _open_s3)

__all__ = [
    "ArtifactStore",
    "BlobInfo",
    "LocalArtifactStore",
    "StoreFactory",
    "collect_garbage",
    "open_artifact_store",
    "register_artifact_scheme",
    "validate_digest",
]
