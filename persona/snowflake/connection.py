"""The Snowflake connection every Persona command opens (``persona snowflake``, ``persona serve
--warehouse snowflake``): key-pair auth from the environment, never from the repository.

SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER, SNOWFLAKE_PRIVATE_KEY_PATH (PKCS#8 PEM) and, if the key is
encrypted, SNOWFLAKE_PRIVATE_KEY_PASSPHRASE; SNOWFLAKE_ROLE overrides the command's role;
SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE and SNOWFLAKE_SCHEMA as in profiles.example.yml.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PRIVATE_KEY_PATH")


def missing(env: Mapping[str, str] = os.environ) -> list[str]:
    """The required variables that are not set."""
    return [v for v in REQUIRED if not env.get(v)]


def options(role: str, env: Mapping[str, str] = os.environ, **extra: Any) -> dict[str, Any]:
    """``snowflake.connector.connect``'s arguments (call ``missing`` first)."""
    return {
        "account": env["SNOWFLAKE_ACCOUNT"],
        "user": env["SNOWFLAKE_USER"],
        "private_key_file": env["SNOWFLAKE_PRIVATE_KEY_PATH"],
        "private_key_file_pwd": env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE") or None,
        "role": env.get("SNOWFLAKE_ROLE", role),
        **extra,
    }
