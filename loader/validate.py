"""The pipeline's validate step, between a source and the batch: privacy, suppression, then
schema policy.

Privacy comes first, so that an event the schema policy refuses is kept in failed events
already protected. A source that protects its input itself before storing it anywhere (the
collector, before its spool) is given no privacy here: hashing twice would change pseudonyms.
Suppression (``privacy.suppression``) comes after privacy, so that it sees ids as the warehouse
stores them, which is what ``persona forget`` resolved and hashed: an event of a suppressed id
is dropped here, never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loader.privacy import Privacy
from loader.schema_policy import SchemaPolicy
from loader.sources.base import Item


@dataclass
class Validate:
    privacy: Privacy | None = None
    schemas: SchemaPolicy | None = None
    suppression: Callable[[Item], Item] | None = None

    def __call__(self, item: Item) -> Item:
        if self.privacy is not None:
            item = self.privacy.protect(item)
        if self.suppression is not None:
            item = self.suppression(item)
            if item is None:
                return None
        if self.schemas is not None:
            item = self.schemas.apply(item)
        return item
