"""Shared helpers of the dashboard views: settings, cached API calls, input choice, one-line errors."""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from advisor_ui.command import RUNS_ENV, STORAGE_ENV, UPLOAD_LIMIT_MB

from advisor.errors import AdvisorError, InputError, first_line
from advisor.models.inputs import InputRequest, LoadedData, ResolvedInputs, load_data, resolve_inputs
from advisor.plugin.registry import Registry, get_registry
from advisor.report.render import fmt_interval, fmt_number

UPLOAD_TYPES = ["npz", "csv", "zip"]
REQUEST_KEY = "request"  # session state: the chosen inputs, as InputRequest fields
REPORT_KEY = "report"  # session state: the report document shown by Recommendation
REPORT_DIR_KEY = "report_dir"  # session state: the run directory the report came from
SEARCH_KEY = "search_run"  # session state: the run directory of the search started here
DEFAULT_SCENARIO = "digits-shift"  # preselected on the Data and Search pages when a plugin registers it
RUN_PARAM = "run"  # the URL's ?run=NAME: the run whose report the Recommendation page shows
MISSING = "\u2013"  # shown for a missing value


class UploadError(InputError, ValueError):
    """An uploaded file the dashboard cannot use (said in the page's words)."""


def runs_dir() -> Path:
    """The runs directory given to ``advisor ui --runs`` (created when missing)."""
    d = Path(os.environ.get(RUNS_ENV, "advisor-runs")).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def storage_url() -> str | None:
    """The storage given to ``advisor ui --storage`` (None without one)."""
    return os.environ.get(STORAGE_ENV) or None


#: The CLI's flags as the fields of the Data page call them (core messages name the flags).
FIELD_WORDS = (
    ("--target-unlabeled PATH", "the unlabelled target data field"),
    ("--target-unlabeled", "the unlabelled target data field"),
    ("--target PATH", "the target data field"),
    ("--target", "the target data field"),
    ("--source PATH", "the source data field"),
    ("--source", "the source data field"),
    ("--model ARCH", "the model field"),
    ("--model", "the model field"),
    ("--label-column", "the label column field"),
    ("--demo", "a built-in scenario"),
)


def in_page_words(text: str) -> str:
    """A core message with its command-line flags replaced by the names of this page's fields."""
    for flag, words in FIELD_WORDS:
        text = re.sub(re.escape(flag) + r"(?![\w-])", words, text)
    return text.replace("give the", "fill in the")


def error_line(exc: BaseException) -> str:
    """One line for the page, in its own words: the advisor's message, or the exception type and text."""
    return in_page_words(first_line(exc, with_type=not isinstance(exc, AdvisorError)))


def show_error(exc: BaseException) -> None:
    """``st.error`` with one line, never a traceback."""
    st.error(error_line(exc))


@st.cache_resource(show_spinner=False)
def registry() -> Registry:
    """The plugin registry, loaded once per server."""
    return get_registry()


def _request_key(req: InputRequest) -> tuple[Any, ...]:
    return tuple(sorted(asdict(req).items()))


@st.cache_resource(show_spinner="Loading and validating the data...", max_entries=4)
def _load_data(key: tuple[Any, ...]) -> LoadedData:
    return load_data(InputRequest(**dict(key)), registry())


@st.cache_resource(show_spinner="Preparing the source model (pretrained here when needed)...", max_entries=2)
def _resolve(key: tuple[Any, ...]) -> ResolvedInputs:
    return resolve_inputs(InputRequest(**dict(key)), registry())


def loaded_data(req: InputRequest) -> LoadedData:
    """Validated data and splits for ``req`` (cached; builds no model)."""
    return _load_data(_request_key(req))


def resolved_inputs(req: InputRequest) -> ResolvedInputs:
    """Data plus the source model for ``req`` (cached; may pretrain a model once)."""
    return _resolve(_request_key(req))


def current_request() -> InputRequest | None:
    """The inputs chosen on the Data page, if any."""
    fields = st.session_state.get(REQUEST_KEY)
    return InputRequest(**fields) if fields else None


def set_request(req: InputRequest) -> None:
    st.session_state[REQUEST_KEY] = asdict(req)


def save_upload(name: str, data: bytes, root: Path) -> Path:
    """Store an uploaded file under ``root`` by content hash; a .zip is extracted to an image folder.

    Refuses other types, files over the size limit and zip members escaping the folder.
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in UPLOAD_TYPES:
        raise UploadError(f"{name}: unsupported file type .{suffix}; use .npz, .csv or .zip (an image folder)")
    if len(data) > UPLOAD_LIMIT_MB * 1024 * 1024:
        raise UploadError(f"{name} is larger than {UPLOAD_LIMIT_MB} MB")
    if not data:
        raise UploadError(f"{name} is empty")
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = root / digest
    folder.mkdir(parents=True, exist_ok=True)
    if suffix != "zip":
        path = folder / Path(name).name
        path.write_bytes(data)
        return path
    target = folder / Path(name).stem
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                dest = (target / member).resolve()
                if not dest.is_relative_to(target.resolve()):
                    raise UploadError(f"{name}: the archive member {member!r} points outside the folder")
            zf.extractall(target)
    except zipfile.BadZipFile as exc:
        raise UploadError(f"{name} is not a valid zip archive") from exc
    entries = [p for p in target.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and any(q.is_dir() for q in entries[0].iterdir()):
        return entries[0]  # the archive wraps the class folders in one top folder
    return target


def to_display(x: np.ndarray) -> np.ndarray:
    """One image (C x H x W, floats in [0, 1] or uint8) as uint8 H x W or H x W x 3 for ``st.image``."""
    if np.asarray(x).dtype == np.uint8:
        img = np.asarray(x)
    else:
        img = (np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0]
    if img.ndim == 3:
        return np.transpose(img, (1, 2, 0))
    return img


def fmt(x: Any, digits: int = 3) -> str:
    """A number for a table cell ("\u2013" when missing): the report's own formatting."""
    return fmt_number(x, digits, MISSING)


def fmt_ci(ci: Any, signed: bool = True) -> str:
    """An interval as ``[lo, hi]`` ("\u2013" when missing); signed for gaps and gains."""
    return fmt_interval(ci, signed, MISSING)


def fmt_duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s`` or ``42 s`` ("\u2013" when unknown)."""
    if seconds is None:
        return MISSING
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def open_run(name: str) -> str | None:
    """Load the report of run ``name`` (a directory under the runs folder, or a run name recorded in one) into
    the session and put it in the URL (``?run=NAME``); the reason in words when it cannot be shown."""
    from advisor.runs import background as uirun
    from advisor.runs.reopen import load_run_report

    d = uirun.find_run(runs_dir(), name)
    if d is None:
        return f"There is no run named \u201c{name}\u201d in {runs_dir()}."
    if uirun.report_doc(d) is None:
        state = uirun.run_status(d).state
        if state == "running":
            return f"Run {d.name} is still running: its report appears when it finishes (see Search for its progress)."
        return f"Run {d.name} has no report ({state}); resume it on the Runs page."
    try:
        st.session_state[REPORT_KEY] = load_run_report(d)
    except Exception as exc:  # noqa: BLE001 - said on the page in one line
        return error_line(exc)
    st.session_state[REPORT_DIR_KEY] = str(d)
    st.query_params[RUN_PARAM] = d.name
    return None


def open_from_url() -> str | None:
    """``?run=NAME`` in the URL: load that run's report unless it is the one shown (survives a reload)."""
    name = st.query_params.get(RUN_PARAM)
    if not name:
        return None
    shown = st.session_state.get(REPORT_DIR_KEY)
    if shown and Path(shown).name == name and REPORT_KEY in st.session_state:
        return None
    return open_run(name)


def metric_name(code: str, description: str) -> str:
    """``code: full name`` from the plugin's description (its first clause)."""
    head = re.split(r"[:.(]| between | of the | on the ", description, maxsplit=1)[0].strip()
    return f"{code}: {head}" if head and head.lower() != code.lower() else code
