"""End to end in a real headless Chromium at 1280x720: ``advisor ui``, a 1-trial digits-shift search with its
progress phases and optimisation plots, the recommendation, a reload of the run's URL (``?run=NAME``), and the
Recommendation page of a quick-advice-only run and of a run with a failed strategy (one server for all)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HEALTH_TIMEOUT_S = 30
SEARCH_TIMEOUT_S = 240

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing under CI=true (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); set CI=true to make this a failure")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> float:
    start = time.time()
    while time.time() - start < HEALTH_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(f"advisor ui exited with code {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return time.time() - start
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"the dashboard was not healthy within {HEALTH_TIMEOUT_S} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and the background runs it started (its process group and theirs)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _kill_runs(runs: Path) -> None:
    """Background runs live in their own sessions: end any still running."""
    import json

    for pfile in runs.glob("*/ui-process.json"):
        try:
            os.killpg(int(json.loads(pfile.read_text())["pid"]), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, KeyError):
            pass


def _broken_registry() -> Any:
    """The built-in registry plus a strategy whose every fit raises (a run with a failed strategy)."""
    from advisor import hookimpl
    from advisor.plugin.contracts import Needs
    from advisor.plugin.registry import build_registry

    class Broken:
        name = "broken"
        family = "model"
        role = "transfer"
        description = "always raises"
        needs = Needs()

        def default_params(self, task: Any) -> dict[str, Any]:
            return {}

        def search_space(self, trial: Any, task: Any) -> dict[str, Any]:
            return {"x": trial.suggest_float("x", 0.1, 1.0)}

        def fit(self, task: Any, params: dict[str, Any], report: Any) -> Any:
            raise RuntimeError("broken on purpose")

        def risks(self, signals: Any, task: Any) -> list[Any]:
            return []

    class Plugin:
        @hookimpl
        def advisor_register_strategies(self, register: Any) -> None:
            register(Broken())

    return build_registry(third_party=False, plugins=[("broken", Plugin())])


def prepare_runs(runs: Path) -> dict[str, str]:
    """Run folders made by the Python API with tiny budgets: a quick-advice-only run and a run whose
    ``broken`` strategy fails (the references still give a verdict). Returns {case: run folder name}."""
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions, recommend
    from advisor.plugin.registry import build_registry

    request = InputRequest(demo="digits-shift")
    recommend(request, RecommendOptions(trials=0, run_dir=str(runs / "quick-run"), meta_store="none"),
              build_registry(third_party=False))
    doc = recommend(request, RecommendOptions(strategies="broken", trials=1, max_epochs=2, n_seeds=2,
                                              run_dir=str(runs / "broken-run"), meta_store="none"),
                    _broken_registry())
    assert "broken" in doc["failed"]
    assert isinstance(doc["recommendation"]["tie_broken"], bool)  # the JSON says whether the tie rule decided
    return {"quick": "quick-run", "failed": "broken-run"}


def _points(page: Any) -> int:
    """Markers drawn in the page's plotly charts (an empty chart draws none)."""
    return page.locator(".js-plotly-plot .scatterlayer .point").count()


def _check_page(page: Any, shot: Path, charts: int) -> None:
    """The page shows no exception, exactly ``charts`` plotly charts, each with its markers drawn; screenshot."""
    page.wait_for_timeout(1500)  # let the plotly charts draw
    page.screenshot(path=str(shot), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == charts
    for i in range(charts):
        assert plots.nth(i).locator(".scatterlayer .point").count() > 0, f"chart {i} drew no marker"
        plots.nth(i).screenshot(path=str(shot.with_name(f"{shot.stem}-{i}.png")))  # scrolled into view
    assert shot.stat().st_size > 10_000


def test_search_digits_shift_in_chromium(tmp_path: Path) -> None:
    _need_chromium()
    playwright = pytest.importorskip("playwright.sync_api")
    runs = tmp_path / "runs"
    port = _free_port()
    advisor = shutil.which("advisor")
    cmd = [advisor] if advisor else [sys.executable, "-m", "advisor"]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([*cmd, "ui", "--port", str(port), "--runs", str(runs)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    shot = tmp_path / "recommendation.png"
    try:
        _wait_healthy(port, proc)
        assert runs.is_dir()
        prepared = prepare_runs(runs)
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
                page.get_by_role("heading", name="Data").wait_for(timeout=60_000)
                for label in ("Data", "Similarity", "Search", "Recommendation", "Runs", "Plugins"):
                    page.get_by_role("link", name=label, exact=True).wait_for(timeout=10_000)
                page.get_by_role("link", name="Search", exact=True).click()
                page.get_by_role("button", name="Start search").wait_for(timeout=30_000)
                trials = page.get_by_label("Trials per strategy", exact=True)
                trials.fill("1")
                trials.press("Enter")
                page.wait_for_timeout(1000)
                page.get_by_role("button", name="Start search").click()
                page.get_by_text("Running").first.wait_for(timeout=30_000)
                start = page.get_by_role("button", name="Start search", include_hidden=True)
                assert start.is_disabled(timeout=10_000)  # no second start while the run is active
                phase = page.get_by_text(re.compile(r"(Quick advice|Trials \d+/\d+|Seed repeats|Test retrains)"))
                phase.first.wait_for(timeout=60_000)
                done = page.get_by_text("Recommended strategy:").or_(page.get_by_text("Failed", exact=True))
                done.first.wait_for(timeout=SEARCH_TIMEOUT_S * 1000)
                failed = page.get_by_text("Failed", exact=True)
                if failed.count():
                    errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
                    pytest.fail(f"the search failed: {errors}")
                page.get_by_text("Finished").first.wait_for(timeout=10_000)
                page.get_by_role("heading", name="Optimisation plots").wait_for(timeout=30_000)
                page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(tmp_path / "search.png"), full_page=True)
                title = page.locator(".js-plotly-plot").first.locator(".gtitle").first.text_content()
                assert title == "Optimisation history of every strategy"
                assert _points(page) > 0  # the history chart drew its trials
                page.get_by_role("link", name="Open the full recommendation").click()
                heading = page.get_by_role("heading", name="Recommended strategy:")
                heading.wait_for(timeout=30_000)
                assert heading.inner_text().split(":", 1)[1].strip()
                page.wait_for_url(re.compile(r"recommendation\?run=ui-digits-shift-"), timeout=10_000)
                url = page.url
                page.get_by_text("Download report.json").wait_for(timeout=10_000)
                _check_page(page, shot, charts=3)  # the gain, the validation scores, the NTG
                page.reload()  # the URL alone brings the report back
                page.get_by_role("heading", name="Recommended strategy:").wait_for(timeout=60_000)
                assert page.url == url
                page.get_by_role("link", name="Runs", exact=True).click()
                opener = page.get_by_role("button", name="Open its report")
                opener.wait_for(timeout=30_000)
                assert opener.is_enabled()  # the run's report exists and the Runs page knows it
                page.goto(f"http://127.0.0.1:{port}/recommendation?run={prepared['quick']}", timeout=60_000)
                page.get_by_role("heading", name="Quick advice only").wait_for(timeout=60_000)
                page.locator("[data-testid='stTable']").first.wait_for(timeout=10_000)  # the advice ranking
                _check_page(page, tmp_path / "quick.png", charts=0)
                page.goto(f"http://127.0.0.1:{port}/recommendation?run={prepared['failed']}", timeout=60_000)
                page.get_by_role("heading", name="Recommended strategy:").wait_for(timeout=60_000)
                page.get_by_text("broken failed: RuntimeError: broken on purpose").wait_for(timeout=10_000)
                _check_page(page, tmp_path / "failed.png", charts=3)  # gain, validation scores, NTG
            finally:
                browser.close()
    finally:
        _stop(proc)
        _kill_runs(runs)
        log.close()
    assert shot.exists() and shot.stat().st_size > 10_000
    assert list(runs.glob("*/report.json"))
