"""Runs: past run directories under the runs directory, reopened without recomputation."""

from __future__ import annotations

import streamlit as st
from advisor_ui.common import REPORT_DIR_KEY, REPORT_KEY, SEARCH_KEY, runs_dir, show_error

from advisor.runs import background as uirun
from advisor.runs.reopen import load_run_report

st.title("Runs")
root = runs_dir()
st.caption(f"Run directories (with a config.json) under `{root}`.")
try:
    runs = uirun.list_runs(root)
except Exception as exc:
    show_error(exc)
    st.stop()
if not runs:
    st.info("No run yet. Start one on the Search page, or with `advisor recommend --run-dir " + str(root) + "/NAME`.")
    st.stop()

st.dataframe([{
    "run": r["run"], "modified": r["modified"].strftime("%Y-%m-%d %H:%M:%S"), "process": r["process"],
    "report": "yes" if r["has_report"] else "no", "complete": {True: "yes", False: "no"}.get(r["complete"], "-"),
    "recommended": r["recommended"] or "-", "exported model": "yes" if r["exported"] else "no",
} for r in runs], hide_index=True)

choice = st.selectbox("Run", [r["run"] for r in runs], key="runs_choice")
c1, c2 = st.columns(2)
if c1.button("Open its report", type="primary"):
    d = root / choice
    try:
        st.session_state[REPORT_KEY] = load_run_report(d)
        st.session_state[REPORT_DIR_KEY] = str(d)
        st.switch_page("views/recommendation.py")
    except Exception as exc:
        show_error(exc)
if c2.button("Watch its progress"):
    st.session_state[SEARCH_KEY] = str(root / choice)
    st.switch_page("views/search.py")
