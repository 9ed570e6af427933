"""Enriched TSV parsed a block at a time, column by column: the loader's fast path.

``parse_block`` takes whole lines of enriched TSV and returns a ``Chunk``: the good events as
one Arrow table (the same columns, types and values ``Batch.to_arrow`` builds from the events of
``enriched.parse_line``) and the failed events. pyarrow's CSV reader splits the lines into 131
string columns in C++, the typed fields are checked against the parser's grammar and cast with
pyarrow.compute, and each self-describing JSON value is split into entity columns once per
distinct value in the block (the derived contexts of a tracker repeat across its events).

Any line the fast path is not sure of (a wrong field count, a value outside the plain form
Enrich writes, a cast that fails, JSON it cannot split) goes through ``enriched.parse_line``,
so a failed event carries exactly the type and reason the per-line parser gives, and an
unusual but valid line is loaded exactly as the per-line parser would load it. A property test
holds the two paths equal (tests/loader/test_columnar.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loader.contract import (
    ARROW_TYPES,
    ATOMIC_FIELDS,
    ATOMIC_NAME_SET,
    ATOMIC_NAMES,
    FIELDS,
    Kind,
    SchemaKey,
)
from loader.enriched import (
    DOUBLE_RE,
    INT_RE,
    MAX_ENTITIES,
    N_FIELDS,
    UUID_RE,
    Event,
    check_depth,
    parse_line,
    unprocessable,
)
from loader.failed import ErrorType, FailedEvent
from loader.metrics import METRICS

_NAMES = [f.name for f in FIELDS]
_READ = pacsv.ReadOptions(column_names=_NAMES, block_size=1 << 22)
_PARSE = pacsv.ParseOptions(
    delimiter="\t", quote_char=False, escape_char=False, newlines_in_values=False
)
_CONVERT = pacsv.ConvertOptions(
    column_types={name: pa.string() for name in _NAMES},
    strings_can_be_null=True,
    null_values=[""],
)
# The plain forms Enrich writes, a subset of the per-line grammar (enriched.py). A timestamp
# with a zone goes the slow way: Arrow casts naive strings only. Calendar checks (Feb 30, hour
# 24) are left to the cast, which refuses what datetime.fromisoformat refuses, except year 0:
# Arrow takes it, datetime does not, so the pattern leaves it out.
_TSTAMP_FAST = (
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"
    r"-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?$"
)
_INT_FAST = f"^{INT_RE}$"
_DOUBLE_FAST = f"^{DOUBLE_RE}$"
_UUID_FAST = f"^{UUID_RE}$"
_JSON_FIELDS = (("contexts", False), ("unstruct_event", True), ("derived_contexts", False))
_BOM = b"\xef\xbb\xbf"
log = logging.getLogger("persona.columnar")


@dataclass
class Chunk:
    """Consecutive input items parsed together: good events as a table, failed events aside.

    ``good_items`` and ``failed_items`` give each row's and each failed event's place among the
    chunk's items (non-empty lines), so a chunk can be cut where a resumed source starts.
    """

    table: pa.Table
    failed: list[FailedEvent]
    good_items: pa.Array
    failed_items: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        rows: int = self.table.num_rows
        return rows + len(self.failed)

    def split(self, n: int) -> tuple[Chunk, Chunk]:
        """The first ``n`` items, and the rest."""
        head = pc.less(self.good_items, n)
        tail = pc.invert(head)
        failed = list(zip(self.failed_items, self.failed, strict=True))
        return (
            Chunk(
                self.table.filter(head),
                [f for i, f in failed if i < n],
                self.good_items.filter(head),
                [i for i, _ in failed if i < n],
            ),
            Chunk(
                self.table.filter(tail),
                [f for i, f in failed if i >= n],
                pc.subtract(self.good_items.filter(tail), n),
                [i - n for i, _ in failed if i >= n],
            ),
        )


def parse_block(data: bytes, source: str = "") -> Chunk:
    """Whole lines of enriched TSV (``\\n``-terminated, as read from a file) to a chunk.

    Never raises: should the block path fail on some input (a bug, a library's limit), the
    block is parsed line by line, and a line that still cannot be handled is a failed event."""
    try:
        return _parse_block(data, source)
    except Exception:
        log.exception("parsing a block failed; parsing its lines one by one")
    _, _, lines = _sort_lines(data, plain=False, utf8=False, fast=False)
    METRICS.add(rows_slow=len(lines))
    parsed = {i: _parse_raw(raw, source) for i, raw in lines.items()}
    try:
        return parse_rows([], [], parsed, _none)
    except Exception:  # then one event will not assemble: find it, keep it as a failed event
        for i, item in parsed.items():
            try:
                parse_rows([], [], {0: item}, _none)
            except Exception as exc:
                parsed[i] = unprocessable(lines[i].decode("utf-8", "backslashreplace"), exc, source)
        return parse_rows([], [], parsed, _none)


def _none(row: int) -> Event | FailedEvent:
    raise AssertionError(f"no rows to fall back from (row {row})")


def _parse_block(data: bytes, source: str) -> Chunk:
    plain = b"\r" not in data and not data.startswith(_BOM)
    strings = None
    body = data[:-1] if data.endswith(b"\n") else data
    if plain and body and b"\n\n" not in body and not body.startswith(b"\n"):
        # The usual block. The reader refuses a line without exactly 131 fields and a value
        # that is not UTF-8 (it checks string columns), so it needs no check beforehand.
        try:
            strings = pacsv.read_csv(pa.py_buffer(data), _READ, _PARSE, _CONVERT)
        except pa.ArrowInvalid:
            strings = None
    if strings is not None:
        fast_lines: list[bytes] | None = None  # split only if some line needs the slow path
        fast_items = list(range(strings.num_rows))
        slow: dict[int, bytes] = {}
    else:
        try:
            data.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
        fast_lines, fast_items, slow = _sort_lines(data, plain, utf8)
        if fast_lines:
            body = b"\n".join(fast_lines) + b"\n"
            strings = pacsv.read_csv(pa.py_buffer(body), _READ, _PARSE, _CONVERT)
        else:
            strings = _empty_strings()
    good, columns, entities = _convert(strings)
    # Rows the fast path was not sure of go to the per-line parser, in their place.
    rows_good = good.to_pylist()
    if not all(rows_good):
        if fast_lines is None:
            fast_lines = data.split(b"\n")
        for row, ok in enumerate(rows_good):
            if not ok:
                slow[fast_items[row]] = fast_lines[row]
    parsed = {i: _parse_raw(raw, source) for i, raw in slow.items()}
    chunk = _assemble(columns, entities, rows_good, fast_items, parsed)
    METRICS.add(rows_fast=sum(rows_good), rows_slow=len(parsed))
    return chunk


def parse_rows(
    rows: list[list[str]],
    row_items: list[int],
    done: dict[int, Event | FailedEvent],
    fallback: Callable[[int], Event | FailedEvent],
) -> Chunk:
    """Enriched rows (131 strings each, ``""`` for empty, as ``enrich.enrich_row`` builds
    them) to a chunk, typed column by column exactly as ``parse_block`` types a block of TSV.

    ``row_items`` gives each row's place among the chunk's items; ``done`` holds the items that
    are already an event or a failed event (input that never became a row). A row the fast path
    is not sure of is handed, by its index in ``rows``, to ``fallback`` (the per-row parser).
    Rows need no TSV escaping, so a tab or a newline in a value is just a character."""
    n = len(rows)
    columns = zip(*rows, strict=True) if rows else ([] for _ in _NAMES)
    arrays = []
    for column in columns:
        if not any(column):  # most fields of most events are empty: no work for them
            arrays.append(pa.nulls(n, pa.string()))
        elif "" in column:
            arrays.append(pa.array([v or None for v in column], pa.string()))
        else:
            arrays.append(pa.array(column, pa.string()))
    strings = pa.Table.from_arrays(arrays, names=_NAMES) if n else _empty_strings()
    good, typed, entities = _convert(strings)
    rows_good = good.to_pylist()
    parsed = dict(done)
    for row, ok in enumerate(rows_good):
        if not ok:
            parsed[row_items[row]] = fallback(row)
    chunk = _assemble(typed, entities, rows_good, row_items, parsed)
    fast = sum(rows_good)
    METRICS.add(rows_fast=fast, rows_slow=n - fast)
    return chunk


def _empty_strings() -> pa.Table:
    return pa.table({name: pa.array([], pa.string()) for name in _NAMES})


def _parse_raw(raw: bytes, source: str) -> Event | FailedEvent:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", "backslashreplace")
        return FailedEvent(text, ErrorType.INVALID_ENCODING, f"not UTF-8: {exc.reason}", source)
    return parse_line(line, source)


def _sort_lines(
    data: bytes, plain: bool, utf8: bool, fast: bool = True
) -> tuple[list[bytes], list[int], dict[int, bytes]]:
    """Each non-empty line to the fast path or, by item index, to the per-line parser (every
    line, with ``fast=False``)."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    fast_lines: list[bytes] = []
    fast_items: list[int] = []
    slow: dict[int, bytes] = {}
    item = 0
    for raw in lines:
        if not plain:
            raw = raw.rstrip(b"\r\n")
        if not raw:
            continue
        # pyarrow's reader would drop a BOM that starts its input, and end a line at a \r
        ok = fast and raw.count(b"\t") == N_FIELDS - 1 and not raw.startswith(_BOM)
        if ok and not plain:
            ok = b"\r" not in raw
        if ok and not utf8:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                ok = False
        if ok:
            fast_lines.append(raw)
            fast_items.append(item)
        else:
            slow[item] = raw
        item += 1
    return fast_lines, fast_items, slow


def _convert(strings: pa.Table) -> tuple[pa.Array, list[pa.Array], _Entities]:
    """Typed atomic columns, per-row entity columns (JSON text), and which rows are sure."""
    n = strings.num_rows
    good = pa.array([True] * n, pa.bool_())
    columns: list[pa.Array] = []
    for f in ATOMIC_FIELDS:
        raw = strings.column(f.name).combine_chunks()
        if raw.null_count == n:  # an empty field: nothing to check (many are, in most events)
            columns.append(pa.nulls(n, ARROW_TYPES[f.kind]))
            continue
        typed, ok = _CAST[f.kind](raw)
        columns.append(typed)
        if ok is not None:
            good = pc.and_(good, pc.fill_null(ok, True))
    event_id = strings.column("event_id").combine_chunks()
    good = pc.and_(good, pc.fill_null(pc.match_substring_regex(event_id, _UUID_FAST), False))
    good = pc.and_(good, pc.is_valid(strings.column("collector_tstamp")))
    entities = _split_entities(strings)
    good = pc.and_(good, entities.ok)
    return good, columns, entities


def _as_string(raw: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    return raw, None


def _checked_cast(
    raw: pa.Array, pattern: str, to: pa.DataType, check: Callable[[str], Any]
) -> tuple[pa.Array, pa.Array]:
    ok = pc.match_substring_regex(raw, pattern)
    candidates = pc.if_else(ok, raw, pa.scalar(None, pa.string()))
    try:
        return pc.cast(candidates, to), ok
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some value matches the form but not the calendar or range: find it value by value.
        flags = []
        for value in candidates.to_pylist():
            try:
                flags.append(value is None or check(value) is not None)
            except (ValueError, OverflowError):
                flags.append(False)
        ok = pc.and_(ok, pa.array(flags, pa.bool_()))
        try:
            return pc.cast(pc.if_else(ok, raw, pa.scalar(None, pa.string())), to), ok
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # Arrow refuses what Python accepts: every row with a value goes the per-line way.
            ok = pc.is_null(raw)
            return pc.cast(pa.nulls(len(raw), pa.string()), to), ok


def _tstamp(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    return _checked_cast(raw, _TSTAMP_FAST, pa.timestamp("us"), datetime.fromisoformat)


def _int(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    typed, ok = _checked_cast(raw, _INT_FAST, pa.int64(), int)
    in_range = pc.and_(pc.greater_equal(typed, -(2**31)), pc.less(typed, 2**31))
    ok = pc.and_(ok, pc.fill_null(in_range, True))
    return pc.if_else(ok, typed, pa.scalar(None, pa.int64())), ok


def _double(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    typed, ok = _checked_cast(raw, _DOUBLE_FAST, pa.float64(), float)
    ok = pc.and_(ok, pc.fill_null(pc.is_finite(typed), True))
    return pc.if_else(ok, typed, pa.scalar(None, pa.float64())), ok


def _bool(raw: pa.Array) -> tuple[pa.Array, pa.Array]:
    ok = pc.or_(pc.is_null(raw), pc.is_in(raw, pa.array(["0", "1"])))
    return pc.if_else(ok, pc.equal(raw, "1"), pa.scalar(None, pa.bool_())), ok


_CAST: dict[Kind, Callable[[pa.Array], tuple[pa.Array, pa.Array | None]]] = {
    Kind.STRING: _as_string,
    Kind.TSTAMP: _tstamp,
    Kind.INT: _int,
    Kind.DOUBLE: _double,
    Kind.BOOL: _bool,
}

# A split JSON value: (column, JSON text of one entity) in order, or None if not sure.
Split = list[tuple[str, bytes]] | None


def _split(value: str, unstruct: bool) -> Split:
    """One self-describing JSON value as entity columns, built exactly as
    ``enriched._add_entities`` builds them; None sends the line to the per-line parser."""
    try:
        envelope = orjson.loads(value)
        check_depth(value, envelope)
        if not isinstance(envelope, dict) or "data" not in envelope:
            return None
        items = envelope["data"]
        if unstruct:
            if not isinstance(items, dict) or not isinstance(items.get("data"), dict):
                return None
            key = SchemaKey.parse(items.get("schema"))
            return [(key.column("unstruct_event"), orjson.dumps(dict(items["data"])))]
        if not isinstance(items, list) or len(items) > MAX_ENTITIES:
            return None
        out = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
                return None
            key = SchemaKey.parse(item.get("schema"))
            entity = {"_schema_version": key.version, **item["data"]}
            out.append((key.column("contexts"), orjson.dumps(entity)))
        return out
    except (ValueError, TypeError):
        return None


@dataclass
class _Entities:
    """The entity columns of a block's rows, built once per distinct JSON value."""

    columns: dict[str, pa.Array]  # per row: JSON text, or null where the row has none
    ok: pa.Array  # rows whose JSON values the fast path could split
    # per JSON field: each row's index among the field's distinct values, and their splits
    fields: list[tuple[pa.Array, list[Split]]]
    _places: dict[int, dict[str, int]] = field(default_factory=dict)

    def row_columns(self, row: int) -> dict[str, int]:
        """One row's entity columns, each with its place in the order the per-line parser
        adds them (built once per row: a row may carry thousands)."""
        places = self._places.get(row)
        if places is None:
            seen: dict[str, None] = {}
            for indices, splits in self.fields:
                index = indices[row].as_py()
                split = None if index is None else splits[index]
                for column, _ in split or ():
                    seen[column] = None
            places = self._places[row] = {column: i for i, column in enumerate(seen)}
        return places


def _split_entities(strings: pa.Table) -> _Entities:
    """Entity columns as JSON text (what ``enriched._add_entities`` builds for each row): each
    distinct value of a JSON field is split once, then spread to its rows with ``take``."""
    n = strings.num_rows
    ok = pa.array([True] * n, pa.bool_())
    pieces: dict[str, list[pa.Array]] = {}  # a column's text from each field, per row
    fields: list[tuple[pa.Array, list[Split]]] = []
    for name, unstruct in _JSON_FIELDS:
        raw = strings.column(name).combine_chunks()
        if raw.null_count == n:
            continue
        encoded = pc.dictionary_encode(raw)
        indices = encoded.indices
        splits = [_split(value, unstruct) for value in encoded.dictionary.to_pylist()]
        fields.append((indices, splits))
        texts: dict[str, list[bytes | None]] = {}
        failed = [split is None for split in splits]
        for index, split in enumerate(splits):
            parts: dict[str, list[bytes]] = {}
            for column, text in split or ():
                parts.setdefault(column, []).append(text)
            for column, texts_of_value in parts.items():
                values = texts.get(column)
                if values is None:
                    values = texts[column] = [None] * len(splits)
                # two entities of one schema in one value share the column, in order
                values[index] = b",".join(texts_of_value)
        if any(failed):
            refused = pa.array(failed, pa.bool_()).take(indices)
            ok = pc.and_(ok, pc.invert(pc.fill_null(refused, False)))
        for column, values in texts.items():
            pieces.setdefault(column, []).append(pa.array(values, pa.string()).take(indices))
    columns: dict[str, pa.Array] = {}
    for column, column_parts in pieces.items():
        if len(column_parts) == 1:
            text = column_parts[0]
        else:  # contexts and derived_contexts of one schema share a column, in that order
            # pairwise, nulls kept: with null_handling="skip", pyarrow 26 drops trailing rows
            # where every part is null (["x", null] joined with ["y", null] gives ["x,y"])
            text = column_parts[0]
            for part in column_parts[1:]:
                text = pc.coalesce(pc.binary_join_element_wise(text, part, ","), text, part)
        if not column.startswith("unstruct_event_"):
            # contexts columns hold lists: "[a,b]" is what orjson.dumps writes for a and b
            text = pc.binary_join_element_wise("[", text, "]", "")
        columns[column] = text
    return _Entities(columns, ok, fields)


def _assemble(
    columns: list[pa.Array],
    entities: _Entities,
    rows_good: list[bool],
    fast_items: list[int],
    parsed: dict[int, Event | FailedEvent],
) -> Chunk:
    """The chunk: fast rows the fast path was sure of, plus ``parsed`` (item → the per-line
    parser's event or failed event), good rows in item order."""
    keep = pa.array(rows_good, pa.bool_())
    names = list(ATOMIC_NAMES)
    good_items = [i for i, ok in zip(fast_items, rows_good, strict=True) if ok]
    failed: list[FailedEvent] = []
    failed_items: list[int] = []
    slow_events: list[tuple[int, Event]] = []
    for i in sorted(parsed):
        result = parsed[i]
        if isinstance(result, FailedEvent):
            failed.append(result)
            failed_items.append(i)
        else:
            slow_events.append((i, result))
    all_good = all(rows_good)
    if all_good:
        table = pa.Table.from_arrays(columns, names=names)
    else:
        table = pa.Table.from_arrays([c.filter(keep) for c in columns], names=names)
    # Entity columns in order of first appearance, as the per-line parser's events add them:
    # by the first item that has the column, then by its place among that item's columns.
    first: dict[str, tuple[int, int]] = {}
    for column, text in entities.columns.items():
        row = pc.index(pc.and_(text.is_valid(), keep), True).as_py()
        if row >= 0:
            first[column] = (fast_items[row], entities.row_columns(row)[column])
    for item, event in slow_events:
        for place, column in enumerate(k for k in event if k not in ATOMIC_NAME_SET):
            if column not in first or (item, place) < first[column]:
                first[column] = (item, place)
    entity_names = sorted(first, key=first.__getitem__)
    fast_text = {
        column: text if all_good else text.filter(keep)
        for column, text in entities.columns.items()
        if column in first
    }
    order = good_items
    if slow_events:
        order, table, fast_text = _merge(table, fast_text, entity_names, good_items, slow_events)
    if entity_names:  # at once: appending one by one copies the schema each time
        table = pa.Table.from_arrays(
            [*table.columns, *(fast_text[c] for c in entity_names)],
            names=[*table.column_names, *entity_names],
        )
    return Chunk(table, failed, pa.array(order, pa.int64()), failed_items)


def _merge(
    table: pa.Table,
    fast_text: dict[str, pa.Array],
    entity_names: list[str],
    items: list[int],
    slow_events: list[tuple[int, Event]],
) -> tuple[list[int], pa.Table, dict[str, pa.Array]]:
    """Good rows from both paths, in item order."""
    atomic = [
        pa.array([e[f.name] for _, e in slow_events], ARROW_TYPES[f.kind]) for f in ATOMIC_FIELDS
    ]
    slow_table = pa.Table.from_arrays(atomic, schema=table.schema)
    both = pa.concat_tables([table, slow_table])
    all_items = items + [i for i, _ in slow_events]
    order = sorted(range(len(all_items)), key=all_items.__getitem__)
    take = pa.array(order, pa.int64())
    merged: dict[str, pa.Array] = {}
    for column in entity_names:
        fast = fast_text.get(column, pa.nulls(table.num_rows, pa.string()))
        slow = pa.array(
            [orjson.dumps(e[column]) if column in e else None for _, e in slow_events],
            pa.string(),
        )
        merged[column] = pa.concat_arrays([fast, slow]).take(take)
    return [all_items[i] for i in order], both.take(take), merged
