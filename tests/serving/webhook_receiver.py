"""A webhook receiver as a separate process (``python -m tests.serving.webhook_receiver PORT
LOG``): checks each delivery's signature (PERSONA_WEBHOOK_SECRET), appends ``delivery id,
intervention id, target id`` to LOG (flushed) and answers 200; a bad signature gets 401."""

from __future__ import annotations

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serving.interventions.webhooks import verify


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    secret = os.environ["PERSONA_WEBHOOK_SECRET"].encode()
    out = open(path, "a", buffering=1)  # noqa: SIM115 - held for the process's life

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if not verify(secret, body, self.headers.get("persona-signature", "")):
                self.send_response(401)
                self.end_headers()
                return
            time.sleep(delay)
            doc = json.loads(body)
            assert doc["delivery_id"] == self.headers["persona-delivery-id"]
            out.write(f"{doc['delivery_id']},{doc['intervention_id']},"
                      f"{doc['target_attribute_key']['id']}\n")  # fmt: skip
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
