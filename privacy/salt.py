"""The salt of the hashes that stand for ids in the audit and suppression tables.

From ``PERSONA_PRIVACY_SALT``, or a key file next to the warehouse (``<warehouse>.privacy-key``,
created with mode 0600 on the first forget). Never in the warehouse and never in the repository:
whoever has the file alone cannot test whether a given person was forgotten.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from loader.errors import ConfigError

ENV = "PERSONA_PRIVACY_SALT"
KEY_SUFFIX = ".privacy-key"


def key_file(warehouse: str | Path) -> Path:
    return Path(f"{warehouse}{KEY_SUFFIX}")


def load(warehouse: str | Path | None, *, create: bool = False) -> bytes | None:
    """The salt: the environment's, else the key file's (made now if ``create``); None when
    there is none and ``create`` is false (nothing was ever suppressed with one)."""
    if value := os.environ.get(ENV, ""):
        if len(value) < 16:
            raise ConfigError(f"{ENV}: at least 16 characters (a long random secret)")
        return value.encode()
    if warehouse is None:
        if create:
            raise ConfigError(f"{ENV} is not set: set it to a long random secret")
        return None
    path = key_file(warehouse)
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path.read_bytes().strip()


def hash_id(salt: bytes, value: str) -> str:
    """A keyed BLAKE2b of an id: as strong as HMAC-SHA256 here, and about a microsecond, so
    the loader can afford one per event."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), key=salt[:64],
                           digest_size=20).hexdigest()  # fmt: skip
