"""One place words the verdict and renders a report document (from ``advisor.pipeline``) as text,
Markdown or JSON.

Private keys (starting with ``_``, such as trained models kept for export) never leave here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from advisor.verdict.rules import Gap, Verdict


def verdict_sentence(v: Verdict) -> str:
    """The verdict in words: what was compared, on what, with how many seeds, and what to do."""
    g = v.gain
    seeds = f"{g.seeds[0]} and {g.seeds[1]} retrains" if g.seeds[0] != g.seeds[1] else f"{g.seeds[0]} retrains each"
    look = "; a second look, the first being promising but within seed luck" if v.looks > 1 else ""
    on_test = f"on the held-out test split (mean of {seeds} on train+val{look})"
    interval = f"gain {g.value:+.3f}, {g.level:.0%} CI [{g.lo:+.3f}, {g.hi:+.3f}] over {g.covers}"
    if v.code == "transfer_helps":
        return (f"Transfer helps: {v.best_transfer} scores {v.transfer_test:.3f} {on_test} against "
                f"{v.reference_test:.3f} for {v.reference}, the best reference trained on the target alone "
                f"({v.score}, {interval}). Use {v.best_transfer}.")
    if v.code == "transfer_hurts":
        return (f"Transfer hurts: the best transfer strategy, {v.best_transfer}, scores {v.transfer_test:.3f} "
                f"{on_test} against {v.reference_test:.3f} for {v.reference}, the best reference trained on the "
                f"target alone ({v.score}, {interval}). Train on the target alone with {v.reference}.")
    why = "includes zero" if g.with_seeds else "cannot include seed luck with one seed, so the verdict does not commit"
    return (f"Transfer gives little or nothing: {v.best_transfer} scores {v.transfer_test:.3f} {on_test} against "
            f"{v.reference_test:.3f} for {v.reference} on the target alone ({v.score}, {interval}; the interval "
            f"{why}). {_no_gain_choice(v)}")


def _no_gain_choice(v: Verdict) -> str:
    """Why ``v.chosen`` is recommended when the test gain is unclear (``advisor.verdict.decide``)."""
    if v.margin <= 0:
        return f"{v.chosen} is the better of the two on {v.basis}."
    if v.chosen == v.best_transfer:
        return (f"{v.chosen} leads on {v.basis} by more than one standard error ({v.margin:.3f}), so it is "
                "recommended.")
    return (f"{v.best_transfer} does not lead {v.reference} on {v.basis} by more than one standard error "
            f"({v.margin:.3f}), so the model that needs no source, {v.reference}, is recommended.")


def gap_reason(gap: Gap, score_name: str) -> str | None:
    """The risk reason a negative-transfer gap gives its strategy, or ``None`` when it gives none."""
    e = gap.estimate
    ci = f"{e.level:.0%} CI [{e.lo:.3f}, {e.hi:.3f}] over {e.covers}"
    if gap.negative_transfer:
        return (f"negative transfer measured: {score_name} is {e.value:.3f} below {gap.reference} on validation "
                f"({ci})")
    if gap.reference_ahead:
        return f"no clear gain over {gap.reference} on validation (gap {e.value:+.3f}, {ci})"
    return None


def tie_sentence(doc: dict[str, Any]) -> str:
    """One sentence when the tie rule chose B (``recommendation.tie_broken``), else empty."""
    rec = doc.get("recommendation") or {}
    if not rec.get("tie_broken"):
        return ""
    b = rec.get("best_transfer_strategy") or rec.get("strategy")
    rows = [r for r in doc.get("strategies") or [] if r.get("role") != "reference" and r.get("val_score") is not None]
    mine = next((r["val_score"] for r in rows if r["strategy"] == b), None)
    top = max((r for r in rows if r["strategy"] != b), key=lambda r: r["val_score"], default=None)
    rival = ""
    if top is not None and mine is not None:
        rival = (f" although {top['strategy']} scores {'higher' if top['val_score'] > mine else 'as high'} on "
                 f"validation ({top['val_score']:.3f} against {mine:.3f})")
    band = rec.get("tie_band")
    within = (f"less than {band:.3f} (one standard error of the leader's validation score, seeds and samples)"
              if isinstance(band, int | float) else "less than one validation sample")
    return (f"Tie rule: {b} was chosen as the best transfer strategy{rival}: scores {within} apart are tied, "
            "and a tie goes to the strategy the quick advice ranked higher.")


def pick_sentence(doc: dict[str, Any]) -> str:
    """How B and the reference were picked: by cross-validation on train+val (``recommendation.selected_by``),
    naming the scores and any tie the quick advice broke; else the validation tie rule (``tie_sentence``)."""
    rec = doc.get("recommendation") or {}
    sel = rec.get("selected_by") or {}
    if sel.get("b") != "crossval":
        return tie_sentence(doc)
    b = rec.get("best_transfer_strategy") or rec.get("strategy")
    cv = {r["strategy"]: r["cv_score"] for r in doc.get("strategies") or [] if r.get("cv_score") is not None}
    others = sorted((n for n in cv if n not in (b, rec.get("reference"))), key=lambda n: -cv[n])
    scores = ", ".join(f"{n} {cv[n]:.3f}" for n in [b, rec.get("reference"), *others[:3]] if n in cv)
    tie = (f"; {b} won a tie (within one row, {rec.get('tie_band', 0):.3f}) by the quick advice's order"
           if rec.get("tie_broken") else "")
    return (f"B and the reference were picked by {sel.get('crossval_folds')}-fold cross-validation on train+val "
            f"({sel.get('crossval_rows')} rows, the data the retrains train on; the search's validation split "
            f"scores models trained on the train split alone): {scores}{tie}. Every strategy with seed repeats "
            "was a candidate, those the race stopped included.")


def retrain_line(payload: dict[str, Any]) -> str:
    """The progress line of a ``final`` event: the verdict's retrains (a second look says so)."""
    ref = payload.get("reference") or "the reference"
    if payload.get("look", 1) > 1:
        return (f"second look: more retrains of {payload['strategy']} and {ref} (the first look's gain was "
                "promising but within seed luck)")
    return f"retraining {payload['strategy']} and {ref} on train+val; scoring on test"


def _seeds_line(doc: dict[str, Any]) -> str:
    """How many seeds stand behind the intervals and what they cover (empty for older reports)."""
    iv = doc.get("intervals")
    if not iv:
        return ""
    raced = iv.get("raced_out_seeds", iv["seeds"])
    raced_note = (f" ({raced} for a strategy the race stopped)" if raced != iv["seeds"] else "")
    if "verdict_level" in iv:
        verdict = (f"the test gain from {iv['seeds']} retrains per arm at {iv['verdict_level']:.0%}, looked at again "
                   f"with {iv['verdict_max_seeds']} per arm when the first look was promising but did not commit "
                   "(two looks at 97% keep the chance of calling a strategy different from itself near 5%)")
    else:
        verdict = f"the test gain from {iv['seeds']} retrains per arm"
    fixed = sorted(r["strategy"] for r in doc.get("strategies", []) if r.get("deterministic"))
    fixed_note = (f" {', '.join(fixed)} {'fits' if len(fixed) == 1 else 'fit'} the same model whatever the seed: "
                  "one fit stands for every seed, with no seed spread." if fixed else "")
    return (f"Intervals: {iv['level']:.0%}, over {iv['covers']}; validation scores and gaps from "
            f"{iv['seeds']} seed repeats of each best setting{raced_note} (not the search's own trial); "
            f"{verdict}.{fixed_note}")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """The report without in-memory objects: what ``--json`` prints and report.json holds."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def fmt_number(x: Any, digits: int = 3, missing: str = "-") -> str:
    """A number for a table cell; ``missing`` for None or NaN (the dashboard passes an en dash)."""
    if x is None or (isinstance(x, float) and x != x):
        return missing
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def fmt_interval(ci: Any, signed: bool = False, missing: str = "-") -> str:
    """An interval as ``[lo, hi]``; signed for gaps and gains; ``missing`` when absent."""
    if not ci or ci[0] is None or ci[1] is None:
        return missing
    return f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


_f = fmt_number
_ci = fmt_interval


def _params(p: dict[str, Any]) -> str:
    """The settings of a fit as ``k=v`` (bookkeeping keys such as ``train_rows`` left out)."""
    from advisor.plugin.contracts import BOOKKEEPING_PARAMS

    return ", ".join(f"{k}={_f(v, 4) if isinstance(v, float) else v}" for k, v in p.items()
                     if k not in BOOKKEEPING_PARAMS) or "-"


def render_markdown(doc: dict[str, Any]) -> str:
    """The report as Markdown (report.md)."""
    lines = ["# Transfer Advisor report", ""]
    rec = doc.get("recommendation")
    if rec:
        lines += [f"**Recommendation: `{rec['strategy']}`** ({rec['verdict_code']})", "", rec["verdict"], "",
                  f"- parameters: {_params(rec['params'])}",
                  f"- test {doc.get('score')}: {_f(rec['test_score'])} (accuracy {_f(rec['test_accuracy'])}, "
                  f"{rec.get('test_size', '?')} samples); gain over {rec.get('reference', 'the reference')} "
                  f"{rec['test_gain']:+.3f} {_ci(rec['test_gain_ci'])}", ""]
        if pick_sentence(doc):
            lines += [pick_sentence(doc), ""]
    elif doc.get("strategies"):
        lines += ["No recommendation: " + doc.get("verdict_missing", "the search is incomplete."), ""]
    else:
        lines += ["Quick advice only (no search was run).", ""]
    if _seeds_line(doc):
        lines += [_seeds_line(doc), ""]
    for note in doc.get("notes", []):
        lines.append(f"> Note: {note}")
    lines += ["", "## Quick advice (before training)", "", "| rank | strategy | prior | risk | reasons |",
              "|---|---|---|---|---|"]
    for i, r in enumerate(doc.get("advice", {}).get("ranking", []), 1):
        lines.append(f"| {i} | {r['strategy']} | {r['prior_score']:.3f} | {r['risk']} | "
                     f"{'; '.join(r['reasons']) or '-'} |")
    if doc.get("strategies"):
        lines += ["", f"## Search results ({doc.get('score')} on the validation split)", "",
                  "| strategy | role | family | val | 95% CI | CV train+val | NTG | NTG 95% CI | negative transfer | "
                  "risk | trials | params |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in doc["strategies"]:
            lines.append(
                f"| {r['strategy']} | {r.get('role', '-')} | {r['family']} | {_f(r['val_score'])} | "
                f"{_ci(r['val_ci'])} | {_f(r.get('cv_score'))} | {_f(r['ntg'])} | "
                f"{_ci(r['ntg_ci'])} | {'yes' if r['negative_transfer'] else 'no'} | {r['risk']} | "
                f"{_trials(r)} | {_params(r['params'])} |")
        if _warm_line(doc):
            lines += ["", _warm_line(doc)]
        raced = [r for r in doc["strategies"] if r.get("stopped")]
        if raced:
            lines += ["", "### Stopped by racing", ""]
            lines += [f"- **{r['strategy']}**: {r['stopped']['reason']}" for r in raced]
        lines += ["", "### Risks", ""]
        for r in doc["strategies"]:
            if r["reasons"]:
                lines.append(f"- **{r['strategy']}** ({r['risk']}): " + "; ".join(r["reasons"]))
    if doc.get("not_applicable"):
        lines += ["", "## Not applicable", ""]
        lines += [f"- {k}: {v}" for k, v in doc["not_applicable"].items()]
    if doc.get("failed"):
        lines += ["", "## Failed", ""]
        lines += [f"- {k}: {v}" for k, v in doc["failed"].items()]
    lines += ["", "## Signals", "", "| metric | value | p-value |", "|---|---|---|"]
    for k, v in doc.get("signals", {}).items():
        lines.append(f"| {k} | {_f(v['value'], 4)} | {_f(v['p_value'], 4)} |")
    run = doc.get("run", {})
    lines += ["", "## Run", "", f"- directory: {run.get('dir')}", f"- storage: {run.get('storage')}",
              f"- seed: {run.get('seed')}, device: {run.get('device')}, elapsed: {run.get('elapsed_s')} s",
              f"- model: {doc.get('model_note', '')}"]
    return "\n".join(lines) + "\n"


def print_report(doc: dict[str, Any], console: Any, show_advice: bool = True) -> None:
    """The human report on a rich console (``show_advice=False`` when the advice was already shown)."""
    from rich.panel import Panel
    from rich.table import Table

    ranking = doc.get("advice", {}).get("ranking", [])
    if show_advice and ranking and not doc.get("strategies"):
        print_advice(doc.get("advice", {}), doc.get("not_applicable", {}), console)
    if doc.get("strategies"):
        t = Table(title=f"Search results ({doc.get('score')}, validation split)")
        for col in ("strategy", "role", "family", "val", "95% CI", "CV", "NTG", "NTG 95% CI", "neg. transfer",
                    "risk", "trials"):
            t.add_column(col)
        for r in doc["strategies"]:
            t.add_row(r["strategy"], r.get("role", "-"), r["family"], _f(r["val_score"]), _ci(r["val_ci"]),
                      _f(r.get("cv_score")), _f(r["ntg"]),
                      _ci(r["ntg_ci"]), "[red]yes[/red]" if r["negative_transfer"] else "no", r["risk"],
                      _trials(r))
        console.print(t)
        for r in doc["strategies"]:
            if r.get("stopped"):
                console.print(f"[dim]{r['strategy']} stopped by racing: {r['stopped']['reason']}[/dim]")
        if _warm_line(doc):
            console.print(f"[dim]{_warm_line(doc)}[/dim]")
        if _seeds_line(doc):
            console.print(_seeds_line(doc))
        for r in doc["strategies"]:
            if r["reasons"]:
                console.print(f"[bold]{r['strategy']}[/bold] ({r['risk']} risk): " + "; ".join(r["reasons"]))
    for k, v in doc.get("failed", {}).items():
        console.print(f"[red]failed[/red] {k}: {v}")
    for note in doc.get("notes", []):
        console.print(f"[yellow]note:[/yellow] {note}")
    rec = doc.get("recommendation")
    if rec:
        extra = "" if doc.get("score") == "accuracy" else f" (accuracy {_f(rec['test_accuracy'])})"
        body = (f"{rec['verdict']}\n\nparameters: {_params(rec['params'])}\n"
                f"test {doc.get('score')}: {_f(rec['test_score'])}{extra} on {rec.get('test_size', '?')} samples; "
                f"gain over {rec.get('reference', 'the reference')} {rec['test_gain']:+.3f} "
                f"{_ci(rec['test_gain_ci'])}")
        if pick_sentence(doc):
            body += f"\n\n{pick_sentence(doc)}"
        console.print(Panel(body, title=f"Recommendation: {rec['strategy']} ({rec['verdict_code']})"))
    elif doc.get("strategies"):
        console.print("No recommendation: " + doc.get("verdict_missing", "the search is incomplete."))
    run = doc.get("run", {})
    if run:
        console.print(f"run: {run.get('dir')}  storage: {run.get('storage')}  elapsed: {run.get('elapsed_s')} s")


def print_advice(advice: dict[str, Any], not_applicable: dict[str, str], console: Any) -> None:
    from rich.table import Table

    t = Table(title="Quick advice (before training)")
    for col in ("rank", "strategy", "family", "prior", "risk", "reasons"):
        t.add_column(col)
    for i, r in enumerate(advice.get("ranking", []), 1):
        t.add_row(str(i), r["strategy"], r["family"], f"{r['prior_score']:.3f}", r["risk"],
                  "; ".join(r["reasons"]) or "-")
    console.print(t)
    for k, v in not_applicable.items():
        console.print(f"not applicable: {k}: {v}")


def _warm_line(doc: dict[str, Any]) -> str:
    """Which meta-store records warm-started which strategy (empty when none did)."""
    parts = [f"{r['strategy']} from {', '.join(r['warm_start'])}" for r in doc.get("strategies", [])
             if r.get("warm_start")]
    return ("Warm start (best settings of similar past runs, tried after the default and before TPE): "
            + "; ".join(parts) + ".") if parts else ""


def _trials(row: dict[str, Any]) -> str:
    """``done/budget``, with a mark when racing stopped the strategy early."""
    mark = " (raced)" if row.get("stopped") else ""
    return f"{row['trials']}/{row['budget']}{mark}"
