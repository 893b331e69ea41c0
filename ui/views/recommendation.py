"""Recommendation: the verdict, ranked strategies, NTG intervals, risks, parameters, downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from advisor_ui.common import REPORT_DIR_KEY, REPORT_KEY, fmt, fmt_ci, open_from_url, open_run, runs_dir, show_error

from advisor.report.render import public
from advisor.runs import background as uirun

VERDICT_BOX = {"transfer_helps": st.success, "no_gain": st.info, "transfer_hurts": st.warning}


def ntg_chart(rows: list[dict[str, Any]]) -> go.Figure | None:
    """NTG per strategy with its 95% interval; right of zero means worse than target_only."""
    rows = [r for r in rows if r.get("ntg") is not None and r.get("ntg_ci")]
    if not rows:
        return None
    fig = go.Figure()
    for r in rows:
        color = "#d62728" if r.get("negative_transfer") else "#1f77b4"
        fig.add_trace(go.Scatter(
            x=[r["ntg"]], y=[r["strategy"]], mode="markers", marker={"size": 11, "color": color},
            error_x={"type": "data", "symmetric": False, "array": [r["ntg_ci"][1] - r["ntg"]],
                     "arrayminus": [r["ntg"] - r["ntg_ci"][0]], "color": color},
            name=r["strategy"], showlegend=False,
            hovertemplate=f"{r['strategy']}: NTG {r['ntg']:+.3f} {fmt_ci(r['ntg_ci'])}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_layout(height=90 + 40 * len(rows), margin={"l": 10, "r": 10, "t": 30, "b": 40},
                      xaxis_title="NTG = score(target_only) - score(strategy)  (above 0: transfer hurts)",
                      title="Negative-transfer gap on validation, with 95% interval")
    fig.update_yaxes(autorange="reversed")
    return fig


def _choose_run() -> None:
    """Load a report from a run directory into the session (no recomputation)."""
    runs = [r for r in uirun.list_runs(runs_dir()) if r["has_report"]]
    if not runs:
        return
    with st.expander("Open a run's report", expanded=REPORT_KEY not in st.session_state):
        choice = st.selectbox("Run", [r["run"] for r in runs], key="rec_run")
        if st.button("Open report"):
            problem = open_run(choice)
            if problem:
                st.warning(problem)


def _strategy_table(doc: dict[str, Any]) -> None:
    rows = [{
        "rank": i, "strategy": r["strategy"], "family": r["family"], "status": r["status"],
        f"val {doc.get('score', '')}": fmt(r["val_score"]), "val 95% CI": fmt_ci(r["val_ci"], signed=False),
        "NTG": fmt(r["ntg"]), "NTG 95% CI": fmt_ci(r["ntg_ci"]),
        "negative transfer": "yes" if r["negative_transfer"] else "no", "risk": r["risk"],
        "trials": f"{r['trials']}/{r['budget']}",
    } for i, r in enumerate(doc.get("strategies", []), 1)]
    st.dataframe(rows, hide_index=True)


def _advice_table(doc: dict[str, Any]) -> None:
    ranking = doc.get("advice", {}).get("ranking", [])
    if not ranking:
        return
    rows = [{"rank": i, "strategy": r["strategy"], "family": r["family"], "prior": fmt(r["prior_score"]),
             "risk": r["risk"], "reasons": "; ".join(r["reasons"]) or "-"} for i, r in enumerate(ranking, 1)]
    st.dataframe(rows, hide_index=True)


def _downloads(doc: dict[str, Any], run_dir: Path | None) -> None:
    st.download_button("Download report.json", json.dumps(public(doc), indent=2, default=str),
                       file_name="report.json", mime="application/json")
    if run_dir is None or not doc.get("recommendation"):
        return
    model = uirun.exported_model(run_dir)
    if model is not None:
        st.download_button(f"Download the exported model ({model.name})", model.read_bytes(),
                           file_name=model.name, mime="application/octet-stream")
        card = model.with_suffix(".md")
        if card.exists():
            st.download_button("Download the model card", card.read_text(), file_name=card.name,
                               mime="text/markdown")
        return
    status = uirun.run_status(run_dir)
    if status.state == "running":
        st.info("A background process is working in this run (search or export); reopen the run when it ends.")
    elif st.button("Export the recommended model",
                   help="Reruns this run with --export in the background: no new trials, the recommended "
                        "strategy is retrained on train+validation and saved with a model card."):
        try:
            uirun.start_export(run_dir)
            st.info("Export started in the background; the download appears here when it is done.")
        except Exception as exc:
            show_error(exc)
    if status.state == "failed":
        st.error(status.error)


def render(doc: dict[str, Any], run_dir: Path | None) -> None:
    """The whole report document on the page."""
    rec = doc.get("recommendation")
    score = doc.get("score", "score")
    if rec:
        st.header(f"Recommended strategy: {rec['strategy']}")
        VERDICT_BOX.get(rec["verdict_code"], st.info)(f"**{rec['verdict_code']}**: {rec['verdict']}")
        c1, c2, c3 = st.columns(3)
        c1.metric(f"Test {score}", fmt(rec["test_score"]), help=f"{rec.get('test_size', '?')} held-out samples")
        c2.metric("Test gain over target_only", f"{rec['test_gain']:+.3f}",
                  help="paired bootstrap over the test samples")
        c2.caption(f"95% CI {fmt_ci(rec['test_gain_ci'])}")
        c3.metric("Risk", rec["risk"])
        st.subheader("Why, and the risks")
        if rec.get("best_transfer_strategy") and rec["best_transfer_strategy"] != rec["strategy"]:
            st.write(f"The best transfer strategy on validation was **{rec['best_transfer_strategy']}**.")
        for reason in rec.get("reasons") or ["No specific risk was found for this strategy."]:
            st.markdown(f"- {reason}")
        st.subheader("Best hyperparameters")
        st.dataframe([{"parameter": k, "value": fmt(v, 5)} for k, v in rec["params"].items()], hide_index=True)
    elif doc.get("strategies"):
        st.header("No recommendation yet")
        st.warning(doc.get("verdict_missing", "The search is incomplete."))
    else:
        st.header("Quick advice only")
        st.info("No search was run (trials = 0): the ranking below comes from the metrics, before any training.")
    for line in doc.get("unfinished", []):
        st.warning(f"Unfinished: {line}")
    for note in doc.get("notes", []):
        st.caption(f"Note: {note}")

    if doc.get("strategies"):
        st.subheader(f"Strategies ranked by validation {score}")
        _strategy_table(doc)
        fig = ntg_chart(doc["strategies"])
        if fig is not None:
            st.plotly_chart(fig)
        with st.expander("Risks per strategy"):
            for r in doc["strategies"]:
                if r["reasons"]:
                    st.markdown(f"**{r['strategy']}** ({r['risk']} risk): " + "; ".join(r["reasons"]))
    st.subheader("Quick advice (before training)")
    _advice_table(doc)
    for name, reason in doc.get("not_applicable", {}).items():
        st.caption(f"Not applicable: {name}: {reason}")
    for name, error in doc.get("failed", {}).items():
        st.error(f"{name} failed: {error}")
    st.subheader("Downloads")
    _downloads(doc, run_dir)
    run = doc.get("run", {})
    if run:
        st.caption(f"Run {run.get('run')} in {run.get('dir')}; seed {run.get('seed')}, device {run.get('device')}, "
                   f"{run.get('elapsed_s')} s. Model: {doc.get('model_note', '')}")


st.title("Recommendation")
url_problem = open_from_url()
if url_problem:
    st.warning(url_problem)
_choose_run()
report = st.session_state.get(REPORT_KEY)
if report is None:
    st.info("No report yet: start a search on the Search page, or reopen a run on the Runs page.")
else:
    report_dir = st.session_state.get(REPORT_DIR_KEY)
    render(report, Path(report_dir) if report_dir else None)
