"""Search: start a recommendation in a background process, watch its phases, cancel it, plot its studies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
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
from advisor.search.study import stopped

POLL_SECONDS = 2
NEXT_DIR_KEY = "search_next_dir"  # the run directory the next Start uses: two clicks share it, the lock refuses one
WAS_RUNNING_KEY = "search_was_running"  # the page reruns once when its run stops, to enable Start again
#: One colour per strategy on the history chart (plotly's default cycle); a racing stop is a black cross.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
STOP_COLOUR = "#000000"
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


def _complete(study: Any) -> list[Any]:
    """The study's completed trials with a value, in trial-number order."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted((t for t in done if t.value is not None), key=lambda t: t.number)


def _stop_trial(study: Any) -> Any | None:
    """The trial after which racing stopped the strategy: its ``after_trials``-th finished trial, by number."""
    from optuna.trial import TrialState

    stop = stopped(study)
    if stop is None:
        return None
    finished = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                      key=lambda t: t.number)
    k = int(stop.get("after_trials") or 0)
    return finished[min(k, len(finished)) - 1] if finished and k > 0 else None


def history_chart(studies: dict[str, Any]) -> go.Figure | None:
    """Every strategy's best-so-far validation score against the trial number on one chart, racing stops
    marked with a cross; ``None`` when no strategy has a completed trial (say so in words)."""
    fig = go.Figure()
    values: list[float] = []
    last = 0
    for i, (name, study) in enumerate(sorted(studies.items())):
        trials = _complete(study)
        if not trials:
            continue
        colour = PALETTE[i % len(PALETTE)]
        sign = -1.0 if study.direction.name == "MINIMIZE" else 1.0
        best, best_so_far = None, []
        for t in trials:
            best = t.value if best is None or sign * t.value > sign * best else best
            best_so_far.append(best)
        xs = [t.number for t in trials]
        values += [t.value for t in trials]
        last = max(last, xs[-1])
        fig.add_trace(go.Scatter(x=xs, y=best_so_far, mode="lines+markers", name=name, legendgroup=name,
                                 line={"color": colour, "shape": "hv"}, marker={"color": colour, "size": 7},
                                 hovertemplate=f"{name}: best %{{y:.3f}} after trial %{{x}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=xs, y=[t.value for t in trials], mode="markers", name=f"{name} trials",
                                 legendgroup=name, showlegend=False, opacity=0.35,
                                 marker={"color": colour, "size": 6, "symbol": "circle-open"},
                                 hovertemplate=f"{name}: trial %{{x}} scored %{{y:.3f}}<extra></extra>"))
        stop_at = _stop_trial(study)
        if stop_at is not None:
            y = max((b for t, b in zip(trials, best_so_far, strict=True) if t.number <= stop_at.number),
                    default=best_so_far[0])
            reason = str(stopped(study).get("reason", "")).replace("<", "&lt;")
            fig.add_trace(go.Scatter(x=[stop_at.number], y=[y], mode="markers", name="stopped by racing",
                                     legendgroup="stopped", showlegend=not any(d.name == "stopped by racing"
                                                                               for d in fig.data),
                                     marker={"color": STOP_COLOUR, "size": 13, "symbol": "x"},
                                     hovertemplate=f"{name} stopped by racing: {reason}<extra></extra>"))
    if not values:
        return None
    lo, hi = min(values), max(values)
    pad = max(0.02, 0.1 * (hi - lo))
    fig.update_xaxes(title="trial number", range=[-0.5, last + 0.5], tickmode="linear" if last <= 20 else "auto",
                     dtick=1 if last <= 20 else None)
    fig.update_yaxes(title="validation score (best so far; faint: each trial)", range=[lo - pad, hi + pad])
    fig.update_layout(title="Optimisation history of every strategy", height=380,
                      margin={"l": 10, "r": 10, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


def importance_problem(study: Any) -> str | None:
    """Why parameter importance cannot be computed for the study, in words; ``None`` when it can."""
    trials = _complete(study)
    if len(trials) < 2:
        return f"Parameter importance needs at least two finished trials; this strategy has {len(trials)}."
    names = {k for t in trials for k in t.params}
    if not names:
        return "This strategy has no tuned parameter, so there is no importance to show."
    if not any(len({repr(t.params.get(k)) for t in trials}) > 1 for k in names):
        return "Every finished trial used the same parameters, so their importance cannot be told apart yet."
    return None


def _load_studies(run_dir: Path, names: list[str]) -> dict[str, Any]:
    return {name: uirun.load_study(run_dir, name) for name in names}


def _plots(run_dir: Path) -> None:
    """All strategies' histories on one chart, then one strategy's parallel coordinates, parameter importance
    and per-epoch values (optuna.visualization); words instead of empty axes."""
    import optuna.visualization as ov

    try:
        rows = uirun.trial_progress(run_dir)
        if not rows:
            return
        studies = _load_studies(run_dir, [r["strategy"] for r in rows])
    except Exception as exc:
        show_error(exc)
        return
    st.subheader("Optimisation plots")
    fig = history_chart(studies)
    if fig is None:
        st.info("No strategy has a finished trial yet: the history appears after the first one.")
        return
    st.plotly_chart(fig)
    for name, study in sorted(studies.items()):
        stop = stopped(study)
        if stop is not None:
            st.caption(f"{name} was stopped by racing: {stop.get('reason', '')}.")
    if any(len(_complete(study)) == 1 for study in studies.values()):
        st.caption("A strategy with one finished trial shows one point: its history grows with each trial.")
    names = sorted(studies)
    first = next((i for i, n in enumerate(names) if _complete(studies[n])), 0)
    strategy = st.selectbox("Strategy for the detailed plots", names, index=first, key="plot_strategy")
    study = studies[strategy]
    try:
        complete = _complete(study)
        if not complete:
            st.info(f"{strategy} has no finished trial yet: nothing to plot.")
            return
        c1, c2 = st.columns(2)
        if any(t.params for t in complete):
            c1.plotly_chart(ov.plot_parallel_coordinate(study), key="plot_parallel")
        else:
            c1.info(f"{strategy} has no tuned parameter: there are no parallel coordinates to draw.")
        problem = importance_problem(study)
        if problem:
            c2.info(problem)
        else:
            c2.plotly_chart(ov.plot_param_importances(study), key="plot_importance")
        if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
            st.plotly_chart(ov.plot_intermediate_values(study), key="plot_intermediate")
        else:
            st.info(f"{strategy} reports no per-epoch value (it trains in one step).")
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
