"""Search: start a recommendation in a background process, watch its phases, cancel it, plot its studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
from advisor_ui.common import (
    DEFAULT_SCENARIO,
    MISSING,
    REPORT_DIR_KEY,
    REPORT_KEY,
    RUN_PARAM,
    SEARCH_KEY,
    current_request,
    fmt_duration,
    registry,
    runs_dir,
    show_error,
)

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions
from advisor.runs import background as uirun
from advisor.runs.reopen import load_run_report

POLL_SECONDS = 2
NEXT_DIR_KEY = "search_next_dir"  # the run directory the next Start uses: two clicks share it, the lock refuses one
WAS_RUNNING_KEY = "search_was_running"  # the page reruns once when its run stops, to enable Start again
STATE_LABEL = {"running": "Running", "finished": "Finished", "failed": "Failed", "cancelled": "Cancelled",
               "idle": "Not started"}


def page_run() -> Path | None:
    """The run this page follows: the one started here, or one opened from Runs."""
    current = st.session_state.get(SEARCH_KEY)
    return Path(current) if current else None


def page_run_active() -> bool:
    run = page_run()
    return run is not None and uirun.run_status(run).state == "running"


def _start_form(active: bool) -> None:
    req = current_request()
    scenarios = sorted(registry().scenarios)
    use_loaded = False
    if req is not None and not req.demo:
        use_loaded = st.checkbox(f"Use the inputs loaded on the Data page (target `{req.target}`)", value=True,
                                 disabled=active)
    wanted = req.demo if req is not None and req.demo else DEFAULT_SCENARIO
    default = scenarios.index(wanted) if wanted in scenarios else 0
    demo = None
    if not use_loaded:
        if not scenarios:
            st.warning("No built-in scenario is registered; load your own data on the Data page.")
            return
        demo = st.selectbox("Scenario", scenarios, index=default, key="search_scenario", disabled=active)
    strategies = sorted(n for n, s in registry().strategies.items() if s.family != "baseline")
    chosen = st.multiselect("Strategies (empty: all; the references always run)", strategies,
                            key="search_strategies", disabled=active)
    quick = st.checkbox("Quick advice only (seconds, no training)", key="search_quick", disabled=active,
                        help="The metrics and the prior ranking, before any training: the same as 0 trials.")
    trials = st.number_input("Trials per strategy", min_value=0, max_value=200, value=2, step=1, key="search_trials",
                             disabled=active or quick, help="0 runs the quick advice only.")
    export = st.checkbox("Export the model when the search is done", key="search_export", disabled=active or quick)
    if active:
        st.caption("A search started here is running: Start is enabled again when it ends or is cancelled.")
    if st.button("Start search", type="primary", disabled=active):
        if page_run_active():  # a click queued before the page showed the button disabled
            st.warning("This page's search is already running; wait for it or cancel it first.")
            return
        request = req if use_loaded and req is not None else InputRequest(demo=demo)
        n = 0 if quick else int(trials)
        options = RecommendOptions(strategies=list(chosen) or None, trials=n)
        target = st.session_state.get(NEXT_DIR_KEY)
        if target is None:
            target = str(uirun.new_run_dir(runs_dir(), request))
            st.session_state[NEXT_DIR_KEY] = target
        try:
            run_dir = uirun.start_run(runs_dir(), request, options, export=bool(export) and n > 0,
                                      run_dir=Path(target))
        except Exception as exc:
            show_error(exc)
            return
        st.session_state[SEARCH_KEY] = str(run_dir)
        st.session_state[WAS_RUNNING_KEY] = True
        st.rerun()


def _progress_text(p: uirun.Progress) -> str:
    parts = [p.label]
    if p.elapsed_s is not None:
        parts.append(f"elapsed {fmt_duration(p.elapsed_s)}")
    if p.state == "running":
        parts.append(f"about {fmt_duration(p.remaining_s)} left" if p.remaining_s is not None
                     else "estimate after the first trial")
    return " \u00b7 ".join(parts)


def _trial_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"strategy": r["strategy"], "finished": f"{min(r['finished'], r['budget'])}/{r['budget']}",
             "pruned": r["pruned"], "running": r["running"], "failed": r["failed"], "interrupted": r["interrupted"],
             "best": MISSING if r["best"] is None else f"{r['best']:.3f}"} for r in rows]


@st.fragment(run_every=POLL_SECONDS)
def _progress(run_dir: Path) -> None:
    """Polled every few seconds: state, phase, counts, times, the log's last lines, the report when done."""
    try:
        p = uirun.run_progress(run_dir)
    except Exception as exc:
        show_error(exc)
        return
    st.markdown(f"**{STATE_LABEL.get(p.state, p.state)}** \u2013 run `{run_dir.name}`")
    st.progress(p.fraction, text=_progress_text(p))
    own = (run_dir / uirun.PROCESS_FILE).exists()
    if p.state == "running":
        if own and st.button("Cancel the search", help="Stops every process this dashboard started for the run."):
            uirun.cancel_run(run_dir)
            st.rerun(scope="app")
        elif not own:
            st.caption("Started outside the dashboard (CLI or worker): its state is read from its storage.")
    if p.rows:
        st.dataframe(_trial_rows(p.rows), hide_index=True)
        if any(r["interrupted"] for r in p.rows):
            st.caption("Interrupted trials were cut short by a cancel or a stopped process; they are not "
                       "failures of the strategy and a resume runs them again.")
    if p.log_tail:
        st.code("\n".join(p.log_tail), language=None)
    status = uirun.run_status(run_dir)
    if p.state == "failed":
        st.error(status.error)
    if p.state == "cancelled":
        st.info("Cancelled: the finished trials are kept; resume the run on the Runs page.")
    if st.session_state.get(WAS_RUNNING_KEY) and p.state != "running":
        st.session_state[WAS_RUNNING_KEY] = False
        st.session_state.pop(NEXT_DIR_KEY, None)
        st.rerun(scope="app")  # enable the form again
    if p.state == "finished" and uirun.report_doc(run_dir) is not None:
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
        elif not doc.get("strategies"):
            st.success("Quick advice ready (no search was run).")
        else:
            st.warning(doc.get("verdict_missing", "No recommendation: the search is incomplete."))
        st.page_link("views/recommendation.py", label="Open the full recommendation", icon=":material/recommend:",
                     query_params={RUN_PARAM: run_dir.name})


def _plots(run_dir: Path) -> None:
    """optuna.visualization for one strategy's study; words instead of empty axes."""
    import optuna.visualization as ov
    from optuna.trial import TrialState

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
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            st.info(f"{strategy} has no finished trial yet: nothing to plot.")
            return
        c1, c2 = st.columns(2)
        if len(complete) == 1:
            c1.info(f"One finished trial so far ({complete[0].value:.3f}): the history needs two.")
        else:
            c1.plotly_chart(ov.plot_optimization_history(study))
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            c2.plotly_chart(ov.plot_intermediate_values(study))
        else:
            c2.info(f"{strategy} reports no per-epoch value (it trains in one step).")
    except Exception as exc:
        show_error(exc)


st.title("Search")
st.caption("Runs the recommendation in a background process; this page polls its progress and never blocks.")
active = page_run_active()
try:
    with st.expander("Start a search", expanded=SEARCH_KEY not in st.session_state or not active):
        _start_form(active)
except Exception as exc:
    show_error(exc)
current = page_run()
if current:
    _progress(current)
    _plots(current)
else:
    st.info("No search started in this session. Past runs are on the Runs page.")
