"""Secrets given in a source URI never reach a log line, the progress output or an error."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from loader.logs import redact
from tests.conftest import ROOT
from tests.loader.live_collector import free_port

SECRET = "hunter2-s3cret"


def test_redact_hides_passwords_tokens_and_userinfo() -> None:
    text = redact(f"kafka://u:{SECRET}@b:9092/t?group=g&sasl.password={SECRET}&token={SECRET}")
    assert SECRET not in text and "group=g" in text and text.count("***") == 3


def test_a_kafka_uri_password_is_not_echoed(tmp_path) -> None:
    base = f"kafka://127.0.0.1:{free_port()}/events?group=g&sasl.password={SECRET}"
    # a bad setting: the error quotes the URI
    bad = subprocess.run(
        [sys.executable, "-m", "loader", "--source", base + "&offset_reset=sideways",
         "--sink", f"duckdb:{tmp_path / 'w.duckdb'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "offset_reset" in bad.stderr
    assert SECRET not in bad.stderr + bad.stdout
    # a broker that is not there: the client's complaints are logged while it retries
    proc = subprocess.Popen(
        [sys.executable, "-m", "loader", "--source",
         base + "&security.protocol=SASL_PLAINTEXT&sasl.mechanism=PLAIN&sasl.username=u",
         "--sink", f"duckdb:{tmp_path / 'w.duckdb'}", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert "listening on kafka://" in err and "sasl.password=***" in err
    assert SECRET not in out + err
