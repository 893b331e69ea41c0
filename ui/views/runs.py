"""Runs: every run under the runs folder (started here, from the CLI or by workers) and, with
``advisor ui --storage URL``, the runs of that storage; state read from their storage, a link per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
from advisor_ui.common import (
    MISSING,
    SEARCH_KEY,
    fmt_ci,
    open_run,
    runs_dir,
    show_error,
    storage_url,
)

from advisor.runs import background as uirun
from advisor.runs.location import mask_url

REPORT_PAGE = "recommendation"  # the Recommendation page's URL path


def run_url(name: str) -> str:
    """The link that opens a run's report (relative to the dashboard's root)."""
    return f"{REPORT_PAGE}?run={name}"


def table_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs table: numbers stay numbers so that every column sorts."""
    return [{
        "link": run_url(r["run"]), "run": r["run"], "state": r["state"], "data": r["data"],
        "verdict": r["verdict"] or MISSING, "pick": r["recommended"] or MISSING, "gain": r["gain"],
        "gain 95% CI": fmt_ci(r["gain_ci"]), "duration": r["duration_s"],
        "trials": f"{r['trials']}/{r['budget']}" if r["budget"] else MISSING,
        "modified": r["modified"].strftime("%Y-%m-%d %H:%M:%S"),
    } for r in runs]


def _actions(root: Path, runs: list[dict[str, Any]]) -> None:
    by_name = {r["run"]: r for r in runs}
    choice = st.selectbox("Run", list(by_name), key="runs_choice")
    r = by_name[choice]
    d = root / choice
    if r["state"] == "failed" and r["error"]:
        st.caption(f"{choice}: {r['error']}")
    c1, c2, c3, c4 = st.columns(4)
    if c1.button("Open its report", type="primary", disabled=not r["has_report"],
                 help=None if r["has_report"] else "The report appears when the run finishes."):
        problem = open_run(choice)
        if problem:
            st.warning(problem)
        else:
            st.switch_page("views/recommendation.py", query_params={"run": choice})
    if c2.button("Watch its progress"):
        st.session_state[SEARCH_KEY] = str(d)
        st.switch_page("views/search.py")
    stoppable = r["state"] in ("failed", "cancelled") or (r["state"] == "finished" and r["complete"] is False)
    if c3.button("Resume", disabled=not stoppable,
                 help="Goes on up to the run's recorded budgets in the background (finished trials are kept)."):
        try:
            uirun.resume_run(d)
            st.session_state[SEARCH_KEY] = str(d)
            st.switch_page("views/search.py")
        except Exception as exc:
            show_error(exc)
    with c4.popover("Delete", disabled=r["state"] == "running"):
        st.write(f"Delete the folder `{d}`? This cannot be undone.")
        if st.button("Delete for good", key="runs_delete"):
            try:
                uirun.delete_run(d)
                st.rerun()
            except Exception as exc:
                show_error(exc)


def _storage_section(root: Path, storage: str) -> None:
    st.subheader("Runs in the storage")
    st.caption(f"`{mask_url(storage)}`: trials and budgets read from it; a report is computed here (seed repeats "
               "and the test verdict, no new trial) into the runs folder once every budget is spent.")
    try:
        rows = uirun.storage_runs(storage)
    except Exception as exc:
        show_error(exc)
        return
    if not rows:
        st.info("The storage holds no run yet.")
        return
    local = {r["run"]: uirun.find_run(root, r["run"]) for r in rows}
    st.dataframe([{
        "link": run_url(local[r["run"]].name) if local[r["run"]] else None, "run": r["run"], "state": r["state"],
        "strategies": ", ".join(r["strategies"]), "trials": f"{r['trials']}/{r['budget']}",
        "running": r["running"], "report here": "yes" if local[r["run"]] and uirun.report_doc(local[r["run"]])
        else "no",
    } for r in rows], hide_index=True, column_config={
        "link": st.column_config.LinkColumn("open", display_text="open", width="small")})
    choice = st.selectbox("Run in the storage", [r["run"] for r in rows], key="storage_choice")
    row = next(r for r in rows if r["run"] == choice)
    here = local[choice]
    if here is not None and uirun.report_doc(here) is not None:
        if st.button("Open its report", key="storage_open"):
            problem = open_run(here.name)
            if problem:
                st.warning(problem)
            else:
                st.switch_page("views/recommendation.py", query_params={"run": here.name})
    elif st.button("Compute its report here", key="storage_report", disabled=row["state"] != "trials done",
                   help="Needs every budget spent; seed repeats and the test verdict run in the background."):
        try:
            d = uirun.start_storage_report(root, storage, choice)
            st.session_state[SEARCH_KEY] = str(d)
            st.switch_page("views/search.py")
        except Exception as exc:
            show_error(exc)


st.title("Runs")
root = runs_dir()
st.caption(f"Runs under `{root}`, whoever started them (this page, `advisor recommend --run-dir`, workers); "
           "their state is read from their storage. Click a column to sort; the link opens the report.")
try:
    runs = uirun.list_runs(root)
except Exception as exc:
    show_error(exc)
    runs = []
if runs:
    st.dataframe(table_rows(runs), hide_index=True, column_config={
        "link": st.column_config.LinkColumn("open", display_text="open", width="small"),
        "gain": st.column_config.NumberColumn("test gain", format="%+.3f",
                                              help="The pick's test gain over the reference"),
        "duration": st.column_config.NumberColumn("duration (s)", format="%.0f"),
        "data": st.column_config.TextColumn("data", width="medium"),
    })
    _actions(root, runs)
else:
    st.info("No run yet. Start one on the Search page, or with `advisor recommend --run-dir " + str(root) + "/NAME`.")
if storage_url():
    _storage_section(root, storage_url() or "")
