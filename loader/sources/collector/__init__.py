"""``http://HOST:PORT``: a Snowplow collector, so the real trackers work unchanged.

It speaks the tracker protocol: ``GET /i`` (one event in the query string, answered with a 1x1
GIF), ``POST /com.snowplowanalytics.snowplow/tp2`` (a ``payload_data`` batch), ``OPTIONS`` for
CORS, and the ``sp`` cookie that carries ``network_userid``. A request is acknowledged only
once its events are fsynced to the local spool; the loader then reads the spool, enriches, and
commits to the warehouse, and only then moves the spool checkpoint. Input that is not an event
(bad JSON, an unknown payload) is spooled too and becomes a failed event with the reason.

The package, by concern:

- ``app``: the ASGI app (routes, CORS, the cookie, the request-head guard)
- ``protocol``: uvicorn's protocol with timeouts and a connection cap
- ``process``: the HTTP process (uvicorn on a thread, the spool's writer)
- ``records``: spooled records to events or chunks (the block path)
- ``source``: ``CollectorSource``, which runs and supervises the HTTP process
- ``config``: ``CollectorConfig`` and ``Limits``
"""

from loader.sources.collector.app import build_app
from loader.sources.collector.config import CollectorConfig, Limits
from loader.sources.collector.records import to_chunk, to_event
from loader.sources.collector.source import CollectorSource

__all__ = ["CollectorConfig", "CollectorSource", "Limits", "build_app", "to_chunk", "to_event"]
