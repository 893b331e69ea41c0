"""Search: start a recommendation in a background process, watch its trials, cancel it, plot studies."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from advisor_ui.common import (
    DEFAULT_SCENARIO,
    REPORT_DIR_KEY,
    REPORT_KEY,
    SEARCH_KEY,
    current_request,
    registry,
    runs_dir,
    show_error,
)

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions
from advisor.runs import background as uirun
from advisor.runs.reopen import load_run_report

POLL_SECONDS = 2


def _start_form() -> None:
    req = current_request()
    scenarios = sorted(registry().scenarios)
    use_loaded = False
    if req is not None and not req.demo:
        use_loaded = st.checkbox(f"Use the inputs loaded on the Data page (target `{req.target}`)", value=True)
    wanted = req.demo if req is not None and req.demo else DEFAULT_SCENARIO
    default = scenarios.index(wanted) if wanted in scenarios else 0
    demo = None
    if not use_loaded:
        if not scenarios:
            st.warning("No built-in scenario is registered; load your own data on the Data page.")
            return
        demo = st.selectbox("Scenario", scenarios, index=default, key="search_scenario")
    strategies = sorted(n for n, s in registry().strategies.items() if s.family != "baseline")
    chosen = st.multiselect("Strategies (empty: all; the baselines always run)", strategies, key="search_strategies")
    trials = st.number_input("Trials per strategy", min_value=1, max_value=200, value=2, step=1, key="search_trials")
    export = st.checkbox("Export the model when the search is done", key="search_export")
    if st.button("Start search", type="primary"):
        request = req if use_loaded and req is not None else InputRequest(demo=demo)
        options = RecommendOptions(strategies=list(chosen) or None, trials=int(trials))
        try:
            st.session_state[SEARCH_KEY] = str(uirun.start_run(runs_dir(), request, options, export=bool(export)))
        except Exception as exc:
            show_error(exc)


@st.fragment(run_every=POLL_SECONDS)
def _progress(run_dir: Path) -> None:
    """Polled every few seconds: process state, trials per strategy, and the report when done."""
    status = uirun.run_status(run_dir)
    try:
        rows = uirun.trial_progress(run_dir)
    except Exception as exc:
        rows = []
        show_error(exc)
    total = sum(r["budget"] for r in rows)
    done = sum(min(r["finished"], r["budget"]) for r in rows)
    label = {"running": "Running", "finished": "Finished", "failed": "Failed", "cancelled": "Cancelled",
             "idle": "Not started"}[status.state]
    st.markdown(f"**{label}** - run `{run_dir.name}`")
    if status.state == "running":
        if not rows:
            st.caption("Loading the data, preparing the model and the quick advice...")
        if st.button("Cancel the search"):
            uirun.cancel_run(run_dir)
            st.rerun()
    if total:
        st.progress(done / total, text=f"{done} of {total} trials finished")
    if rows:
        st.dataframe([{**r, "best": "-" if r["best"] is None else f"{r['best']:.3f}"} for r in rows],
                     hide_index=True)
    if status.state == "failed":
        st.error(status.error)
    if status.state == "running" and rows and done >= total:
        st.caption("Trials done: seed repeats and the final test-split score are running.")
    if status.state in ("finished", "cancelled") and (run_dir / "report.json").exists():
        try:
            doc = load_run_report(run_dir)
        except Exception as exc:
            show_error(exc)
            return
        st.session_state[REPORT_KEY] = doc
        st.session_state[REPORT_DIR_KEY] = str(run_dir)
        rec = doc.get("recommendation")
        if rec:
            st.success(f"Recommended strategy: {rec['strategy']} ({rec['verdict_code']})")
        else:
            st.warning(doc.get("verdict_missing", "No recommendation: the search is incomplete."))
        st.page_link("views/recommendation.py", label="Open the full recommendation", icon=":material/recommend:")


def _plots(run_dir: Path) -> None:
    """optuna.visualization for one strategy's study."""
    import optuna.visualization as ov

    try:
        rows = uirun.trial_progress(run_dir)
    except Exception as exc:
        show_error(exc)
        return
    if not rows:
        return
    st.subheader("Optimisation plots")
    strategy = st.selectbox("Strategy", [r["strategy"] for r in rows], key="plot_strategy")
    try:
        study = uirun.load_study(run_dir, strategy)
        if not study.trials:
            st.info(f"{strategy} has no trial yet.")
            return
        c1, c2 = st.columns(2)
        c1.plotly_chart(ov.plot_optimization_history(study))
        c2.plotly_chart(ov.plot_intermediate_values(study))
    except Exception as exc:
        show_error(exc)


st.title("Search")
st.caption("Runs the recommendation in a background process; this page polls its progress and never blocks.")
try:
    with st.expander("Start a search", expanded=SEARCH_KEY not in st.session_state):
        _start_form()
except Exception as exc:
    show_error(exc)
current = st.session_state.get(SEARCH_KEY)
if current:
    _progress(Path(current))
    _plots(Path(current))
else:
    st.info("No search started in this session. Past runs are on the Runs page.")
