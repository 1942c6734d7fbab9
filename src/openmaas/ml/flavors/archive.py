"""Unpacking an uploaded model archive (zip or tar) without trusting it.

An archive is hostile until proven otherwise: members with absolute paths,
``..``, links or device files, more than ``MAX_MEMBERS`` members, or more
uncompressed bytes than allowed (a zip bomb) are refused before anything is
written; what is written goes only under the destination folder.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from openmaas.errors import InvalidFile

MAX_MEMBERS = 10_000
CHUNK = 1 << 20


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        not name
        or path.is_absolute()
        or ".." in path.parts
        or len(name) > 512
        or any(ord(ch) < 32 for ch in name)
        or (path.parts and ":" in path.parts[0])
    ):
        raise InvalidFile(f"the archive holds an unsafe path {name[:100]!r}")
    return path


def unpack(archive: Path, dest: Path, *, max_bytes: int) -> Path:
    """Extract ``archive`` into ``dest``; returns the model's root (a lone top folder is
    stepped into, as ``zip -r model.zip model/`` makes one)."""
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        _unzip(archive, dest, max_bytes)
    elif tarfile.is_tarfile(archive):
        _untar(archive, dest, max_bytes)
    else:
        raise InvalidFile("the upload is neither a zip nor a tar archive")
    entries = [p for p in dest.iterdir() if p.name not in ("__MACOSX", ".DS_Store")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest


def _check_total(sizes: list[int], max_bytes: int) -> None:
    if len(sizes) > MAX_MEMBERS:
        raise InvalidFile(f"the archive holds more than {MAX_MEMBERS} files")
    total = sum(sizes)
    if total > max_bytes:
        raise InvalidFile(
            f"the archive unpacks to {total} bytes; the limit is {max_bytes}",
            details={"limit": max_bytes},
        )


def _unzip(archive: Path, dest: Path, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_total([i.file_size for i in infos], max_bytes)
            for info in infos:
                rel = _safe_name(info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if mode not in (0, 0o100000, 0o040000):  # links, devices, fifos
                    raise InvalidFile(f"the archive member {info.filename!r} is not a plain file")
                target = dest.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as src, target.open("xb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > info.file_size:  # a lying header
                            raise InvalidFile(f"the archive member {info.filename!r} is corrupt")
                        out.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError) as e:
        raise InvalidFile(f"the zip archive is corrupt: {e}") from None


def _untar(archive: Path, dest: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            _check_total([m.size for m in members], max_bytes)
            for m in members:
                rel = _safe_name(m.name)
                if not (m.isfile() or m.isdir()):
                    raise InvalidFile(f"the archive member {m.name!r} is not a plain file")
                target = dest.joinpath(*rel.parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                if src is None:
                    raise InvalidFile(f"the archive member {m.name!r} cannot be read")
                with src, target.open("xb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InvalidFile(f"the tar archive is corrupt: {e}") from None
