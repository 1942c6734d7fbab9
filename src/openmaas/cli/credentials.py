"""Tokens saved by ``openmaas login``: one JSON object ``{server url: token}``.

The file is ``$XDG_CONFIG_HOME/openmaas/credentials.json`` (``~/.config`` when
the variable is unset) and is readable by its owner only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from openmaas.errors import InvalidInput


def config_dir() -> Path:
    # XDG_CONFIG_HOME is a desktop convention, not an OPENMAAS_* setting.
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "openmaas"


def path() -> Path:
    return config_dir() / "credentials.json"


def _key(url: str) -> str:
    return url.rstrip("/")


def load() -> dict[str, str]:
    file = path()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidInput(f"cannot read {file}: {e}; fix or delete it") from e
    if not isinstance(data, dict):
        raise InvalidInput(f"{file} is not a JSON object of server url -> token; delete it")
    return {str(k): str(v) for k, v in data.items()}


def _save(data: dict[str, str]) -> Path:
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = file.with_name(file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)  # O_CREAT's mode is ignored when the file already existed
    os.replace(tmp, file)
    return file


def token_for(url: str) -> str | None:
    return load().get(_key(url))


def store(url: str, token: str) -> Path:
    """Remember ``token`` for ``url``; return the file written."""
    data = load()
    data[_key(url)] = token
    return _save(data)


def forget(url: str) -> str | None:
    """Drop the token saved for ``url`` and return it (None if there was none)."""
    data = load()
    token = data.pop(_key(url), None)
    if token is not None:
        _save(data)
    return token
