"""Recommendation: the verdict, ranked strategies, NTG intervals, risks, parameters, downloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from advisor_ui.common import (
    MISSING,
    REPORT_DIR_KEY,
    REPORT_KEY,
    fmt,
    fmt_ci,
    open_from_url,
    open_run,
    runs_dir,
    show_error,
)

from advisor.report.render import pick_sentence, public
from advisor.runs import background as uirun

VERDICT_BOX = {"transfer_helps": st.success, "no_gain": st.info, "transfer_hurts": st.warning}
PICK_COLOUR, REF_COLOUR, HURT_COLOUR, OTHER_COLOUR = "#2ca02c", "#7f7f7f", "#d62728", "#1f77b4"
#: Full names of the scores a report may be ranked by.
SCORE_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1"}


def metric_label(code: str) -> str:
    """A score's name in words."""
    return SCORE_NAMES.get(code, code)


def ntg_chart(rows: list[dict[str, Any]], reference: str | None = None) -> go.Figure | None:
    """NTG per strategy with its 95% interval; right of zero means worse than the reference."""
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
                      xaxis_title=f"NTG = score({reference or 'reference'}) - score(strategy)  "
                                  "(above 0: transfer hurts)",
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
        "CV train+val": fmt(r.get("cv_score")), "NTG": fmt(r["ntg"]), "NTG 95% CI": fmt_ci(r["ntg_ci"]),
        "negative transfer": "yes" if r["negative_transfer"] else "no" if r["ntg"] is not None else MISSING,
        "prior risk": r["risk"], "trials": f"{r['trials']}/{r['budget']}",
    } for i, r in enumerate(doc.get("strategies", []), 1)]
    st.dataframe(rows, hide_index=True, column_config={
        "CV train+val": st.column_config.TextColumn(
            "CV train+val", help="the best setting cross-validated on train+val (3 folds): what B and the reference "
                                 "were picked by"),
        "negative transfer": st.column_config.TextColumn("negative transfer (measured)",
                                                         help="the gap's interval lies above zero"),
        "prior risk": st.column_config.TextColumn("prior risk", help="from the metrics, before training")})


def _advice_table(doc: dict[str, Any]) -> None:
    ranking = doc.get("advice", {}).get("ranking", [])
    if not ranking:
        return
    rows = [{"rank": i, "strategy": r["strategy"], "family": r["family"], "prior": fmt(r["prior_score"]),
             "prior risk": r["risk"], "reasons": "; ".join(r["reasons"]) or MISSING} for i, r in enumerate(ranking, 1)]
    st.table(rows)  # a table wraps the long reasons


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


def reference_of(doc: dict[str, Any]) -> str | None:
    """The reference strategy: named by the recommendation, else the row with the reference role."""
    rec = doc.get("recommendation") or {}
    if rec.get("reference"):
        return str(rec["reference"])
    rows = doc.get("strategies") or []
    refs = [r for r in rows if r.get("role") == "reference" or (r.get("role") is None and r["family"] == "baseline")]
    refs = [r for r in refs if r.get("val_score") is not None]
    return max(refs, key=lambda r: r["val_score"])["strategy"] if refs else None


def score_chart(doc: dict[str, Any]) -> go.Figure | None:
    """Every strategy's validation score with its interval; the reference as a line, the pick highlighted."""
    rows = [r for r in doc.get("strategies") or [] if r.get("val_score") is not None]
    if not rows:
        return None
    score = doc.get("score", "score")
    pick = (doc.get("recommendation") or {}).get("strategy")
    ref = reference_of(doc)
    fig = go.Figure()
    groups = [("recommended", PICK_COLOUR, lambda r: r["strategy"] == pick),
              ("reference (target only)", REF_COLOUR, lambda r: r["strategy"] == ref and r["strategy"] != pick),
              ("negative transfer measured", HURT_COLOUR,
               lambda r: r["strategy"] not in (pick, ref) and bool(r.get("negative_transfer"))),
              ("other strategies", OTHER_COLOUR,
               lambda r: r["strategy"] not in (pick, ref) and not r.get("negative_transfer"))]
    for label, colour, keep in groups:
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        lo = [r["val_score"] - r["val_ci"][0] if r.get("val_ci") else 0.0 for r in sel]
        hi = [r["val_ci"][1] - r["val_score"] if r.get("val_ci") else 0.0 for r in sel]
        fig.add_trace(go.Scatter(
            x=[r["val_score"] for r in sel], y=[r["strategy"] for r in sel], mode="markers", name=label,
            marker={"size": 14 if label == "recommended" else 10, "color": colour,
                    "symbol": "star" if label == "recommended" else "circle"},
            error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": colour},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    if ref is not None:
        ref_row = next(r for r in rows if r["strategy"] == ref) if any(r["strategy"] == ref for r in rows) else None
        if ref_row is not None:
            fig.add_vline(x=ref_row["val_score"], line_dash="dash", line_color=REF_COLOUR,
                          annotation_text=f"reference {ref}", annotation_position="top")
    order = [r["strategy"] for r in sorted(rows, key=lambda r: r["val_score"], reverse=True)]
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    fig.update_layout(height=140 + 34 * len(rows), margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      title=f"Validation {metric_label(score)} of each strategy, with its 95% interval",
                      xaxis_title=f"{metric_label(score)} on validation (right is better)",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def gain_chart(doc: dict[str, Any]) -> go.Figure | None:
    """The gain of the best transfer strategy over the reference, on validation and on test (right is better)."""
    rec = doc.get("recommendation") or {}
    val = validation_gain(doc)
    if not rec or rec.get("test_gain") is None:
        return None
    rows = [("test (held out, scored once)", rec["test_gain"], rec.get("test_gain_ci"), PICK_COLOUR)]
    if val is not None:
        rows.insert(0, ("validation", val[0], val[1], OTHER_COLOUR))
    fig = go.Figure()
    for label, value, ci, colour in rows:
        fig.add_trace(go.Scatter(
            x=[value], y=[label], mode="markers", marker={"size": 12, "color": colour}, showlegend=False,
            error_x={"type": "data", "symmetric": False, "array": [ci[1] - value if ci else 0.0],
                     "arrayminus": [value - ci[0] if ci else 0.0], "color": colour},
            hovertemplate=f"{label}: {value:+.3f} {fmt_ci(ci)}<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color=REF_COLOUR, annotation_text="no gain",
                  annotation_position="top")
    b = rec.get("best_transfer_strategy") or rec["strategy"]
    fig.update_layout(height=230, margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      title=f"Gain of {b} over {reference_of(doc) or 'the reference'}, with its 95% interval",
                      xaxis_title="gain (right: transfer helps; left: transfer hurts)")
    return fig


def validation_gain(doc: dict[str, Any]) -> tuple[float, list[float] | None] | None:
    """The best transfer strategy's validation gain over the reference (minus its NTG) and its interval."""
    rec = doc.get("recommendation") or {}
    b = rec.get("best_transfer_strategy") or rec.get("strategy")
    row = next((r for r in doc.get("strategies") or [] if r["strategy"] == b), None)
    if row is None or row.get("ntg") is None:
        return None
    ci = row.get("ntg_ci")
    return -row["ntg"], ([-ci[1], -ci[0]] if ci else None)


def reconcile(doc: dict[str, Any]) -> str:
    """One sentence that puts the validation gain and the test gain side by side and says which to act on."""
    rec = doc.get("recommendation") or {}
    val = validation_gain(doc)
    if not rec or val is None or rec.get("test_gain") is None:
        return ""
    v, vci = val
    t, tci = rec["test_gain"], rec.get("test_gain_ci")
    overlap = bool(vci and tci and vci[0] <= tci[1] and tci[0] <= vci[1])
    b = rec.get("best_transfer_strategy") or rec["strategy"]
    head = (f"On validation {b} gains {v:+.3f} {fmt_ci(vci)} over the reference; on the held-out test split "
            f"{t:+.3f} {fmt_ci(tci)}. ")
    if overlap:
        return head + "The two intervals overlap, so they agree within their uncertainty; the verdict rests on test."
    if v > t:
        return head + ("Validation chose the winner among several strategies on the same split, so its gain is "
                       "optimistic; the test split, scored once, is the number to act on.")
    return head + ("The test gain is larger than validation suggested (a small validation split is noisy); the "
                   "verdict rests on test.")


def _tie_note(doc: dict[str, Any]) -> str:
    """Why the pick is not the top row by validation: the cross-validation on train+val or the tie rule
    (``pick_sentence``; inferred from the rows for reports written before ``tie_broken``), and the reference's
    own win."""
    rec = doc.get("recommendation") or {}
    rows = [r for r in doc.get("strategies") or [] if r.get("val_score") is not None]
    if not rec or not rows:
        return ""
    b = rec.get("best_transfer_strategy") or rec["strategy"]
    ref = reference_of(doc)
    parts = []
    if "tie_broken" in rec:
        parts.append(pick_sentence(doc))
    else:  # an older report: the tie rule decided when B is not the top non-reference row
        top = [r["strategy"] for r in sorted(rows, key=lambda r: -r["val_score"]) if r["strategy"] != ref]
        if top and top[0] != b:
            parts.append(f"{top[0]} is first by validation score but {b} was chosen as the best transfer strategy: "
                         "scores less than one validation sample apart are tied and a tie goes to the strategy the "
                         "quick advice ranked higher.")
    if rec["strategy"] == ref and rec.get("verdict_code") != "transfer_hurts":
        parts.append(f"The reference {ref} is recommended: the gain of {b} is not clear on test, and {b} does not "
                     "lead it by more than the noise on the scores both were picked by (cross-validation: one "
                     "standard error of their paired difference).")
    return " ".join(p for p in parts if p)


def render(doc: dict[str, Any], run_dir: Path | None) -> None:
    """The whole report document on the page."""
    rec = doc.get("recommendation")
    score = doc.get("score", "score")
    if rec:
        st.header(f"Recommended strategy: {rec['strategy']}")
        VERDICT_BOX.get(rec["verdict_code"], st.info)(f"**{rec['verdict_code']}**: {rec['verdict']}")
        mean = rec.get("test_score_mean", rec.get("test_score"))
        n = rec.get("test_retrains")
        c1, c2, c3 = st.columns(3)
        c1.metric(f"Test {metric_label(score)}", fmt(mean),
                  help=(f"mean of {n} retrains on train+validation; " if n else "") +
                  f"{rec.get('test_size', '?')} held-out samples")
        c2.metric("Test gain over the reference", f"{rec['test_gain']:+.3f}",
                  help="the best transfer strategy minus the reference, over seeds and test samples")
        c2.caption(f"95% CI {fmt_ci(rec['test_gain_ci'])}")
        row = next((r for r in doc.get("strategies") or [] if r["strategy"] == rec["strategy"]), {})
        measured = ("negative transfer measured" if row.get("negative_transfer") else
                    "no negative transfer measured" if row.get("ntg") is not None else "the reference itself")
        c3.metric("Measured on validation", measured, help="from the seed repeats' gap to the reference")
        c3.caption(f"Prior risk (before training): {rec['risk']}")
        if rec.get("test_score_mean") is not None and rec.get("test_score") is not None:
            st.caption(f"The exported model (the first retrain) scores {fmt(rec['test_score'])} on test by itself; "
                       f"the headline is the mean of {n or 'the'} retrains.")
        fig = gain_chart(doc)
        if fig is not None:
            st.plotly_chart(fig)
        sentence = reconcile(doc)
        if sentence:
            st.markdown(sentence)
        st.subheader("Why this one")
        tie = _tie_note(doc)
        if tie:
            st.info(tie)
        val = validation_gain(doc)
        if val is not None:
            st.markdown(f"- Measured: {rec.get('best_transfer_strategy') or rec['strategy']} is {val[0]:+.3f} "
                        f"{fmt_ci(val[1])} against the reference on validation (seed repeats of its best setting).")
        for reason in rec.get("reasons") or []:
            st.markdown(f"- {reason}")
        if not rec.get("reasons") and val is None:
            st.markdown("- No measured gap and no prior risk reason was recorded for this strategy.")
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
        st.subheader(f"Strategies ranked by validation {metric_label(score)}")
        fig = score_chart(doc)
        if fig is not None:
            st.plotly_chart(fig)
        _strategy_table(doc)
        fig = ntg_chart(doc["strategies"], reference_of(doc))
        if fig is not None:
            st.plotly_chart(fig)
        with st.expander("Risks per strategy: prior (before training) and measured (seed repeats)"):
            for r in doc["strategies"]:
                if r["reasons"]:
                    st.markdown(f"**{r['strategy']}** (prior risk {r['risk']}): " + "; ".join(r["reasons"]))
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
