"""``persona forget`` and ``persona retention``: argument parsing and output; the work is in
``privacy.forget`` and ``privacy.retention``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loader.errors import ConfigError, PersonaError
from privacy import forget as fg
from privacy import ledger, salt

EXIT_BUSY = 3


def _warehouse() -> str:
    return os.environ.get("PERSONA_DUCKDB", "warehouse.duckdb")


def forget_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Forget a person: every device, browser and session stitched to the id is "
        "resolved, and every row of every table of the warehouse that holds one is deleted "
        "(raw events, failed events' raw lines, every derived model); the file is then "
        "checkpointed. The request is audited in privacy.forget_requests with a salted hash of "
        "the id, never the id. docs/privacy.md says what remains where (backups, Time Travel).",
        epilog="Modes (as Segment's regulations): suppress_with_delete (default) deletes and "
        "drops the ids' future events at the loader; delete_only deletes (and drops the events "
        "already collected but not yet loaded); suppress_only drops future events; unsuppress "
        "lifts a suppression. The warehouse is $PERSONA_DUCKDB (default warehouse.duckdb); the "
        "hashes' salt is $PERSONA_PRIVACY_SALT or the key file <warehouse>.privacy-key.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", help="the user's user_id (the login id)")
    who.add_argument("--domain-userid", help="a device's domain_userid")
    who.add_argument("--network-userid", help="a browser's network_userid (the sp cookie)")
    who.add_argument("--file", type=Path, help="ids, one per line (of --file-kind)")
    who.add_argument("--status", action="store_true", help="list the requests and exit")
    p.add_argument("--file-kind", choices=sorted(fg.KINDS), default="user_id",
                   help="the kind of the ids in --file (%(default)s)")  # fmt: skip
    p.add_argument("--mode", choices=fg.MODES, default="suppress_with_delete")
    p.add_argument("--warehouse", default=None, help="a DuckDB file ($PERSONA_DUCKDB)")
    p.add_argument(
        "--target",
        choices=["duckdb", "snowflake"],
        default="duckdb",
        help="snowflake: the connection from SNOWFLAKE_* as dbt's profile reads it",
    )
    p.add_argument(
        "--api", metavar="URL",
        help="send the request to the live process at URL (persona serve holds the "
        "warehouse); token from $PERSONA_API_TOKEN",
    )  # fmt: skip
    p.add_argument(
        "--compact",
        action="store_true",
        help="then rewrite the file from its live "
        "rows: a checkpoint frees deleted rows' blocks, this also overwrites their "
        "bytes (takes as long as copying the warehouse)",
    )
    p.add_argument("--no-checkpoint", action="store_true", help=argparse.SUPPRESS)
    return p


def targets(args: argparse.Namespace) -> list[fg.Ids]:
    for kind in fg.KINDS:
        value = getattr(args, kind)
        if value is not None:
            if not value.strip():
                raise ConfigError(f"--{kind.replace('_', '-')}: an id, not an empty string")
            return [fg.Ids(kind, value)]
    lines = args.file.read_text(encoding="utf-8").splitlines()
    ids = [fg.Ids(args.file_kind, v.strip()) for v in lines if v.strip()]
    if not ids:
        raise ConfigError(f"--file {args.file}: no ids in it")
    return ids


def busy_message(warehouse: str, holder: str) -> str:
    return (
        f"the warehouse {warehouse} is open in another process, {holder}; nothing was changed.\n"
        "If it is `persona serve`, send the request through it:\n"
        "  PERSONA_API_TOKEN=... persona forget --user-id ID --api http://HOST:PORT\n"
        "If it is `persona load` (or dbt), stop it (Ctrl-C or SIGTERM: it loads what it "
        "accepted, then exits), run this command again, then start it again: it reads the "
        "suppression list when it starts."
    )


def open_warehouse(warehouse: str) -> Any:
    import duckdb

    from loader.sinks.duckdb_lock import lock_holder

    try:
        return duckdb.connect(warehouse)
    except duckdb.IOException as exc:
        holder = lock_holder(exc)
        if holder is None:
            raise
        raise Busy(busy_message(warehouse, holder)) from None


class Busy(PersonaError):
    pass


def via_api(url: str, ids: list[fg.Ids], mode: str) -> int:
    token = os.environ.get("PERSONA_API_TOKEN", "")
    if not token:
        raise ConfigError("--api: set PERSONA_API_TOKEN to the live process's token")
    for target in ids:
        body = json.dumps({"kind": target.kind, "id": target.value, "mode": mode}).encode()
        request = urllib.request.Request(
            url.rstrip("/") + "/v1/forget", data=body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                print(json.loads(response.read())["summary"])
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise PersonaError(f"{url}: {exc.code} {detail}") from None
    return 0


def on_snowflake(ids: list[fg.Ids], mode: str) -> int:
    from privacy import snowflake

    key = salt.load(None)
    if key is None:
        raise ConfigError(f"--target snowflake: set {salt.ENV} (the hashes' salt)")
    con = snowflake.connect()
    try:
        for target in ids:
            print(fg.forget(con, target, mode, key, engine="snowflake").line())
    finally:
        con.close()
    return 0


def print_status(con: Any) -> None:
    cur = con.cursor()
    ledger.ensure(cur)
    rows = ledger.requests(cur)
    if not rows:
        print("no forget requests")
        return
    print(f"{'requested_at':<20} {'mode':<21} {'kind':<15} {'id hash':<14} {'status':<14} "
          f"{'rows':>9}  stopped at")  # fmt: skip
    for r in rows:
        print(f"{r.requested_at:%Y-%m-%d %H:%M:%S}  {r.mode:<21} {r.id_kind:<15} "
              f"{r.id_hash[:12]:<14} {r.status:<14} {sum(r.rows_removed.values()):>9,}  "
              f"{r.stopped_at or ''}")  # fmt: skip


def forget_main(argv: Sequence[str], prog: str = "persona forget") -> int:
    args = forget_parser(prog).parse_args(argv)
    try:
        warehouse = args.warehouse or _warehouse()
        if args.status:
            con = open_warehouse(warehouse)
            print_status(con)
            con.close()
            return 0
        ids = targets(args)
        if args.api:
            return via_api(args.api, ids, args.mode)
        if args.target == "snowflake":
            return on_snowflake(ids, args.mode)
        if not Path(warehouse).exists():
            raise ConfigError(f"the warehouse {warehouse} does not exist (set PERSONA_DUCKDB)")
        key = salt.load(warehouse, create=True)
        assert key is not None
        con = open_warehouse(warehouse)
        try:
            for target in ids:
                outcome = fg.forget(con, target, args.mode, key,
                                    checkpoint=not args.no_checkpoint)  # fmt: skip
                print(outcome.line())
        finally:
            con.close()
        if args.compact:
            fg.compact(warehouse)
            print(f"{warehouse} rewritten from its live rows")
    except Busy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except PersonaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def retention_main(argv: Sequence[str], prog: str = "persona retention") -> int:
    from privacy import retention

    return retention.main(argv, prog)
