"""One colour per channel and per segment on every page, and numbers people can read."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import altair as alt
import pandas as pd

# Tableau 10 reordered so neighbours differ; a channel keeps its colour whatever the filter.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#1f77b4",
    "#17becf",
)
CHANNELS = (
    "Direct",
    "Organic Search",
    "Paid Search",
    "Email",
    "Organic Social",
    "Paid Social",
    "Referral",
    "Display",
    "Affiliates",
    "Paid Other",
    "Unassigned",
)
SEGMENTS = (
    "champions",
    "at_risk_customers",
    "cart_abandoners",
    "high_value",
    "new_visitors",
    "lapsed",
)
NOTHING = "\u2013"  # an en dash: no value
GOOD, BAD, NEUTRAL, FLAG = "#4e79a7", "#e15759", "#bab0ac", "#e15759"


def _colour(name: str, known: tuple[str, ...]) -> str:
    if name in known:
        return PALETTE[known.index(name) % len(PALETTE)]
    return PALETTE[sum(name.encode()) % len(PALETTE)]  # stable across runs, unlike hash()


def scale(names: Iterable[str], known: tuple[str, ...]) -> alt.Scale:
    """A colour scale that gives each name the same colour on every chart."""
    domain = sorted(
        set(names), key=lambda n: (n not in known, known.index(n) if n in known else 0, n)
    )
    return alt.Scale(domain=domain, range=[_colour(n, known) for n in domain])


def channel_scale(names: Iterable[str]) -> alt.Scale:
    return scale(names, CHANNELS)


def segment_scale(names: Iterable[str]) -> alt.Scale:
    return scale(names, SEGMENTS)


def number(value: Any) -> float:
    """A value from a query as a float, nothing (None, NaN, NaT) as 0."""
    return 0.0 if value is None or pd.isna(value) else float(value)


def count(value: Any) -> str:
    """12,345 (or an en dash for nothing)."""
    if value is None or pd.isna(value):
        return NOTHING
    return f"{round(float(value)):,}"


def percent(part: Any, whole: Any, digits: int = 1) -> str:
    if not number(whole) or part is None or pd.isna(part):
        return NOTHING
    return f"{100 * float(part) / float(whole):.{digits}f}%"


def money(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOTHING
    return f"{float(value):,.2f}"


def duration(seconds: Any) -> str:
    """A span in the unit a person would say: 45 s, 12 min, 3.5 h, 2.1 days."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return NOTHING
    s = float(seconds)
    if abs(s) < 10:
        return f"{s:.1f} s"
    if abs(s) < 120:
        return f"{s:,.0f} s"
    if abs(s) < 7200:
        return f"{s / 60:,.0f} min"
    if abs(s) < 172800:
        return f"{s / 3600:,.1f} h"
    return f"{s / 86400:,.1f} days"


def ago(then: datetime | None, now: datetime | None = None) -> str:
    if then is None or pd.isna(then):
        return "never"
    now = now or datetime.now(UTC).replace(tzinfo=None)  # the warehouse keeps naive UTC
    return duration((now - then) / timedelta(seconds=1)) + " ago"


def size(n_bytes: Any) -> str:
    """Bytes as a person reads them: 512 B, 12.3 KB, 4.5 MB (powers of 1,000)."""
    if n_bytes is None or pd.isna(n_bytes):
        return NOTHING
    value = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return NOTHING  # unreachable
