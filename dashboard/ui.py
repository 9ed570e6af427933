"""What every page shares: reading through a cache, a chart with its one-line explanation and
the SQL behind it one click away, empty states that say what to do, and an error boundary that
turns a failure into one line on screen (the trace goes to the server's log)."""

from __future__ import annotations

import contextlib
import logging
import textwrap
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from dashboard.source import Source, Unavailable, resolve, run_query

if TYPE_CHECKING:
    from streamlit.elements.vega_charts import AltairChart

__all__ = ["Source", "Unavailable"]

log = logging.getLogger("persona.dashboard")


def current_source() -> Source:
    """The source of this run (resolved again on every rerun: the live mode may have started or
    stopped since)."""
    return resolve()


@st.cache_data(ttl=300, show_spinner=False, max_entries=512)
def _cached(
    version: tuple[Any, ...], sql: str, params: tuple[Any, ...], _source: Source
) -> pd.DataFrame:
    return run_query(_source, sql, params)


def query(source: Source, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """A query's result, cached until the warehouse file changes (or for a minute on
    Snowflake)."""
    sql = textwrap.dedent(sql).strip()
    return _cached(source.version(), sql, tuple(params), source).copy()


def scalar(source: Source, sql: str, params: Sequence[Any] = ()) -> Any:
    frame = query(source, sql, params)
    if frame.empty:
        return None
    value = frame.iloc[0, 0]
    return None if pd.isna(value) else value


def heading(title: str, what: str) -> None:
    """A chart's title and what it shows, in one line."""
    st.subheader(title)
    st.caption(what)


def show_sql(sql: str) -> None:
    """The SQL behind what is above it, one click away."""
    with st.expander("SQL"):
        st.code(textwrap.dedent(sql).strip(), language="sql")


def show_source(text: str) -> None:
    """Where a chart not drawn from SQL comes from (a report file), one click away."""
    with st.expander("Source"):
        st.markdown(text)


def chart(
    title: str, what: str, sql: str, figure: AltairChart | None, empty: str | None = None
) -> None:
    heading(title, what)
    if figure is None:
        st.info(empty or "Nothing to show yet.")
    else:
        st.altair_chart(figure, width="stretch")
    show_sql(sql)


def table(
    title: str,
    what: str,
    sql: str,
    frame: pd.DataFrame,
    empty: str,
    column_config: dict[str, Any] | None = None,
) -> None:
    heading(title, what)
    if frame.empty:
        st.info(empty)
    else:
        st.dataframe(frame, hide_index=True, width="stretch", column_config=column_config)
    show_sql(sql)


def count_column(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, format="localized", help=help)


def percent_column(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, format="percent", help=help)


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Run a page: Unavailable becomes its message; anything else one line naming the page."""
    try:
        yield
    except ScriptControlException:
        raise
    except Unavailable as exc:
        st.warning(str(exc))
    except Exception as exc:
        log.exception("the %s page failed", what)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        st.error(f"The {what} page could not be drawn: {first}. The server's log has the details.")
