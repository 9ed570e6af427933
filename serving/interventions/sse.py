"""Server-sent events: the Signals SDK's ``pull_interventions`` (``GET /api/v1/interventions?
domain_userid=ID&...``, ``Accept: text/event-stream``) receives each intervention meant for the
targets it names, as ``id: SEQ`` and ``data: {InterventionInstance}``.

Every intervention is kept for a bounded replay window (``replay_seconds`` and at most
``replay_events``, reloaded from ``interventions.fired`` after a restart). A client that
reconnects with ``Last-Event-ID: SEQ`` gets what it missed for its targets inside the window,
never one it acknowledged (a sequence number at or below SEQ); a client without it gets only
what fires from then on. Replay and live delivery are registered under one lock, so nothing
falls between them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from serving.interventions.outbox import Fire

KEEPALIVE_SECONDS = 15.0


@dataclass
class Item:
    seq: int
    key: str
    id: str
    data: bytes  # the InterventionInstance as JSON
    at: float


@dataclass(eq=False)
class Subscriber:
    targets: frozenset[tuple[str, str]]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Item | None] = field(default_factory=asyncio.Queue)  # None: the end


class Hub:
    def __init__(self, replay_seconds: float = 300.0, replay_events: int = 10_000) -> None:
        self.replay_seconds = replay_seconds
        self.buffer: deque[Item] = deque(maxlen=replay_events)
        self.subscribers: dict[tuple[str, str], set[Subscriber]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def item(fire: Fire) -> Item:
        return Item(fire.seq, fire.target_key, fire.target_id, orjson.dumps(fire.instance()),
                    fire.fired_at.timestamp())  # fmt: skip

    def preload(self, fires: Iterable[Fire]) -> None:
        with self._lock:
            self.buffer.extend(self.item(f) for f in fires)

    def listeners(self, key: str, identifier: str) -> int:
        return len(self.subscribers.get((key, identifier), ()))

    def publish(self, fires: Iterable[Fire]) -> int:
        """Keep ``fires`` for replay and hand each to the subscriptions of its target; returns
        how many subscriptions got one."""
        handed = 0
        with self._lock:
            for fire in fires:
                item = self.item(fire)
                self.buffer.append(item)
                for sub in self.subscribers.get((item.key, item.id), ()):
                    sub.loop.call_soon_threadsafe(sub.queue.put_nowait, item)
                    handed += 1
        return handed

    def subscribe(self, targets: Mapping[str, list[str]], last_id: int | None,
                  loop: asyncio.AbstractEventLoop) -> tuple[Subscriber, list[Item]]:  # fmt: skip
        wanted = frozenset((k, i) for k, ids in targets.items() for i in ids)
        sub = Subscriber(wanted, loop)
        with self._lock:
            replay: list[Item] = []
            if last_id is not None:
                horizon = time.time() - self.replay_seconds
                replay = [it for it in self.buffer
                          if it.seq > last_id and it.at >= horizon
                          and (it.key, it.id) in wanted]  # fmt: skip
            for target in wanted:
                self.subscribers.setdefault(target, set()).add(sub)
        return sub, replay

    def close(self) -> None:
        """End every subscription's response cleanly (the process is stopping): clients see
        the stream end, not a connection torn mid-chunk."""
        with self._lock:
            subs = {sub for subs in self.subscribers.values() for sub in subs}
        for sub in subs:
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, None)

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            for target in sub.targets:
                subs = self.subscribers.get(target)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self.subscribers[target]

    async def stream(self, sub: Subscriber, replay: list[Item],
                     keepalive: float = KEEPALIVE_SECONDS) -> AsyncIterator[bytes]:  # fmt: skip
        """The response body: replayed items, then live ones, a comment every ``keepalive``
        seconds (proxies close idle connections); each sequence number once."""
        sent: set[int] = set()
        try:
            yield b": persona interventions\n\n"
            for item in replay:
                sent.add(item.seq)
                yield _frame(item)
            while True:
                try:
                    queued = await asyncio.wait_for(sub.queue.get(), keepalive)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if queued is None:
                    return
                if queued.seq in sent:
                    continue
                sent.add(queued.seq)
                yield _frame(queued)
        finally:
            self.unsubscribe(sub)


def _frame(item: Item) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (item.seq, item.data)
