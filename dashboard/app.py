"""The app's entry script (``streamlit run`` runs it on every interaction): the navigation and
the sidebar; each page is a script under pages/."""

from __future__ import annotations

import streamlit as st

from dashboard import ui
from dashboard.source import Unavailable, close_run

st.set_page_config(page_title="Persona", page_icon="◉", layout="wide")

PAGES = [
    st.Page("views/pipeline.py", title="Pipeline", url_path="pipeline", default=True),
    st.Page("views/traffic.py", title="Traffic and funnels", url_path="traffic"),
    st.Page("views/segments.py", title="Segments and audiences", url_path="segments"),
    st.Page("views/customer.py", title="Customer 360", url_path="customer"),
    st.Page("views/anomalies.py", title="Anomalies", url_path="anomalies"),
    st.Page("views/rulesets.py", title="Rule sets", url_path="rulesets"),
]
page = st.navigation(PAGES)

with st.sidebar:
    st.markdown("**Persona**: what the warehouse knows")
    try:
        st.caption(f"Reading {ui.current_source().note}")
    except Unavailable as exc:
        st.caption(str(exc))
    if st.button("Reload data", help="Read the warehouse again instead of the cached results"):
        st.cache_data.clear()

try:
    page.run()
finally:
    close_run()  # let a writer (make demo, persona serve) take the file between runs
