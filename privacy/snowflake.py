"""``persona forget --target snowflake``: the same request on Snowflake, through the connector.

The connection comes from the environment dbt's Snowflake profile reads (profiles.example.yml:
``SNOWFLAKE_ACCOUNT``, ``SNOWFLAKE_USER``, ``SNOWFLAKE_PASSWORD`` or
``SNOWFLAKE_PRIVATE_KEY_PATH``, ``SNOWFLAKE_ROLE``, ``SNOWFLAKE_WAREHOUSE``,
``SNOWFLAKE_DATABASE``); the role needs DELETE on the database's tables. Deleted rows stay in
Time Travel for the table's ``DATA_RETENTION_TIME_IN_DAYS``, then 7 days in Fail-safe
(docs/privacy.md). The salt must come from ``PERSONA_PRIVACY_SALT`` (there is no file beside
a Snowflake warehouse). Dynamic tables refresh themselves from the remaining rows.
"""

from __future__ import annotations

import os
from typing import Any

from loader.errors import ConfigError


def connect() -> Any:
    import snowflake.connector

    params: dict[str, Any] = {
        "account": os.environ.get("SNOWFLAKE_ACCOUNT", ""),
        "user": os.environ.get("SNOWFLAKE_USER", ""),
        "role": os.environ.get("SNOWFLAKE_ROLE", "PERSONA_TRANSFORMER"),
        "warehouse": os.environ.get("SNOWFLAKE_WAREHOUSE", "PERSONA_WH"),
        "database": os.environ.get("SNOWFLAKE_DATABASE", "PERSONA"),
        "paramstyle": "qmark",
    }
    if not params["account"] or not params["user"]:
        raise ConfigError("--target snowflake: set SNOWFLAKE_ACCOUNT and SNOWFLAKE_USER")
    if key := os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        params["private_key_file"] = key
        if passphrase := os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
            params["private_key_file_pwd"] = passphrase
    elif password := os.environ.get("SNOWFLAKE_PASSWORD"):
        params["password"] = password
    else:
        raise ConfigError("--target snowflake: set SNOWFLAKE_PRIVATE_KEY_PATH or "
                          "SNOWFLAKE_PASSWORD")  # fmt: skip
    return snowflake.connector.connect(**params)
