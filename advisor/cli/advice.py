"""``advisor advice``: fit the quick advice's learned ranker on past runs, and measure it out of sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from advisor.cli.common import print_json


@click.group("advice")
def advice() -> None:
    """Learn the quick advice from past runs (fit) and measure it leave-one-dataset-out (evaluate)."""


@advice.command("fit")
@click.option("--meta-store", "meta_store", default=None, metavar="PATH|URL",
              help="Meta-store to read: a folder or a database URL (default: the folder `advisor recommend` "
                   "appends to without an RDB --storage).")
@click.option("--storage", default=None, metavar="URL",
              help="Read the meta-store table of this database (where runs with this RDB --storage append).")
@click.option("--runs", default=None, metavar="DIR", help="Read the run folders under DIR instead (report.json).")
@click.option("--out", default=None, metavar="FILE",
              help="Where to write the model (default: advice-model.json in the user cache, which the quick "
                   "advice then uses instead of the shipped model).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fit(meta_store: str | None, storage: str | None, runs: str | None, out: str | None, as_json: bool) -> None:
    """Fit the ranker on a meta-store's records (or run folders) and write the model the advice uses."""
    from advisor.advice.learned import fit as fit_model
    from advisor.advice.learned import user_model_path
    from advisor.errors import InputError
    from advisor.runs.location import is_rdb_url
    from advisor.runs.metastore import MetaStoreError, open_meta_store, records_from_runs

    given = [f"--{k}" for k, v in (("meta-store", meta_store), ("storage", storage), ("runs", runs)) if v is not None]
    if len(given) > 1:
        raise InputError(f"give one of --meta-store, --storage or --runs, not {' and '.join(given)}")
    if storage is not None and not is_rdb_url(storage):
        raise InputError(f"--storage {storage}: not a database URL (a journal run's records are in the "
                         "meta-store folder: --meta-store PATH)")
    if runs is not None:
        if not Path(runs).is_dir():
            raise InputError(f"--runs {runs}: no such folder")
        records, where = records_from_runs(runs), f"run folders under {runs}"
    else:
        store = open_meta_store(storage or meta_store)
        if store is None:
            raise InputError("--meta-store none: nothing to read")
        where = f"meta-store {store.shown}"
        try:
            records = store.records()
        except MetaStoreError as exc:
            raise InputError(str(exc)) from exc
    if not records:
        raise InputError(f"{where}: no records, nothing to learn from")
    try:
        model = fit_model(records, origin=f"fitted on {len(records)} records from {where}")
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from exc
    path = model.save(out or user_model_path(), records=records)
    result = {"model": str(path), "records": len(model.record_ids), "record_ids": model.record_ids,
              "strategies": sorted(model.strategies), "features": model.features, "alpha": model.alpha,
              "prior_weight": model.prior_weight, "source": where, "used_by_advice": out is None}
    if as_json:
        print_json(result)
        return
    chosen = ("the hand-set rule: nothing learned beat it leave-one-dataset-out" if model.alpha is None else
              f"ridge alpha {model.alpha}, weight on the hand-set score {model.prior_weight}")
    click.echo(f"fitted on {len(model.record_ids)} records from {where} ({chosen})")
    click.echo(f"learned strategies: {', '.join(sorted(model.strategies)) or 'none'}")
    click.echo(f"evidence: {', '.join(model.features)}")
    click.echo(f"wrote {path}")
    if out is None:
        click.echo("the quick advice now ranks the learned strategies with this model (delete the file to go back "
                   "to the shipped one)")


def _read_records(path: str) -> list[dict[str, Any]]:
    """Records from a JSON list, a model file (its ``records``) or JSON lines (a meta-store's records.jsonl)."""
    from advisor.errors import InputError

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"--records {path}: {exc.strerror or exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise InputError(f"--records {path}: neither JSON nor JSON lines ({exc})") from exc
    if isinstance(doc, dict):
        doc = doc.get("records", [])
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise InputError(f"--records {path}: expected a list of records")
    return doc


@advice.command("evaluate")
@click.option("--records", default=None, metavar="FILE",
              help="Records to evaluate on: JSON list, model file or records.jsonl (default: the harness records "
                   "shipped with the package).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def evaluate(records: str | None, as_json: bool) -> None:
    """Kendall's tau and top-pick regret of the learned ranker, leave-one-dataset-out, against the hand-set
    prior and the oracle's own validation ranking."""
    from advisor.advice.learned import SHIPPED_MODEL, evaluate_lodo, format_evaluation, load_file
    from advisor.errors import InputError

    recs = _read_records(records) if records else load_file(SHIPPED_MODEL)[1]
    source = records or f"{SHIPPED_MODEL} (harness records)"
    result = evaluate_lodo(recs)
    if result.summary["records"] == 0:
        raise InputError(f"{source}: no record has outcomes for two or more strategies")
    if as_json:
        print_json({"records_from": source, **result.to_json()})
        return
    click.echo(f"records: {source}")
    click.echo(format_evaluation(result))
