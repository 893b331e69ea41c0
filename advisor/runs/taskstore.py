"""The task description and the source model's weights, stored with the run (DESIGN.md §6).

Every process that works on a run (``advisor recommend``, ``advisor worker``, ``advisor report
--storage``) reads the task and the model from here, so CPU and GPU workers train the very same
source model, checked against its SHA-256, and nobody needs a shared filesystem:

- RDB storage (``postgresql://...``, ``sqlite:///...``): one row per run in the table
  ``advisor_runs(run TEXT PRIMARY KEY, task TEXT (JSON), model BYTEA, model_sha256 TEXT)``, created
  with SQLAlchemy in the same database as Optuna's tables;
- journal file: two files next to the journal (the run directory by default):
  ``<run>.task.json`` and ``<run>.model-<sha256 prefix>.pt``.

The model is stored as this project's checkpoint format (spec, state dict, source classes).
The first process to store a run's task wins; later ones read it back.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import AdvisorFailure, InputError, first_line
from advisor.models.inputs import ARCH_NAMES, NO_MODEL, InputRequest, ResolvedInputs, load_data
from advisor.runs.files import atomic_write_bytes
from advisor.runs.location import connect_url, ensure_tables, is_rdb_url, mask_url, scrub

if TYPE_CHECKING:
    from advisor.models.backbone import Backbone

TABLE = "advisor_runs"
TASK_VERSION = 1


@dataclass
class StoredTask:
    """What a run is: the request, the options that shape trials, data hashes and the model's hash."""

    run: str
    fingerprint: str
    request: dict[str, Any]
    options: dict[str, Any]
    data_fingerprints: dict[str, str]
    model_sha256: str
    pretrained: bool
    model_note: str
    strategies: list[str] = field(default_factory=list)
    version: int = TASK_VERSION

    def input_request(self) -> InputRequest:
        return InputRequest(**self.request)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StoredTask:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as exc:
            raise AdvisorFailure(f"the stored task is damaged or from another version: {exc}") from exc


# --------------------------------------------------------------------------- model bytes


def model_bytes(backbone: Backbone) -> bytes:
    """The backbone as checkpoint-file bytes (``advisor.models.sources.save_checkpoint``)."""
    from advisor.models.sources import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(backbone, Path(tmp) / "model.pt")
        return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _CheckpointFile:
    """The stored model written to a temporary checkpoint file, for ``load_data``/``read_checkpoint``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "source_model.pt"
        path.write_bytes(self.data)
        return path

    def __exit__(self, *exc: object) -> None:
        assert self._dir is not None
        self._dir.cleanup()


# --------------------------------------------------------------------------- the stores


class TaskStore(ABC):
    """Where one storage keeps its runs' tasks and models (see the module docstring)."""

    @abstractmethod
    def load(self, run: str) -> StoredTask | None:
        """The run's stored task, or None while the run has none."""

    @abstractmethod
    def _read_model(self, task: StoredTask) -> bytes:
        """The stored model bytes, unchecked."""

    @abstractmethod
    def create(self, task: StoredTask, model: bytes) -> StoredTask:
        """Store ``task`` and ``model`` unless the run already has a task; return the stored one."""

    @abstractmethod
    def _write_task(self, task: StoredTask) -> None:
        """Replace the stored task description (the model never changes)."""

    def model(self, task: StoredTask) -> bytes:
        """The run's model bytes, checked against the stored SHA-256."""
        data = self._read_model(task)
        if sha256(data) != task.model_sha256:
            raise AdvisorFailure(f"the stored source model of run {task.run!r} does not match its SHA-256 "
                                 f"{task.model_sha256[:16]}: the storage is damaged")
        return data

    def add_strategies(self, run: str, names: list[str]) -> StoredTask:
        """Record the strategies whose studies exist (union with those already recorded)."""
        task = self.load(run)
        if task is None:
            raise AdvisorFailure(f"run {run!r} has no stored task")
        merged = list(dict.fromkeys([*task.strategies, *names]))
        if merged != task.strategies:
            task = replace(task, strategies=merged)
            self._write_task(task)
        return task


class RdbTaskStore(TaskStore):
    """Tasks in the table ``advisor_runs`` of the RDB storage's own database."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.url = url
        self.meta = sa.MetaData()
        self.table = sa.Table(
            TABLE, self.meta,
            sa.Column("run", sa.Text, primary_key=True),
            sa.Column("task", sa.Text, nullable=False),
            sa.Column("model", sa.LargeBinary, nullable=False),
            sa.Column("model_sha256", sa.String(64), nullable=False),
        )
        try:
            self.engine = sa.create_engine(connect_url(url), pool_pre_ping=True)
            ensure_tables(self.meta, self.engine)
        except Exception as exc:  # SQLAlchemy and driver errors: all mean "unusable storage"
            raise InputError(f"cannot open storage {mask_url(url)}: {scrub(first_line(exc))}") from exc

    def load(self, run: str) -> StoredTask | None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table.c.task).where(self.table.c.run == run)).first()
        return None if row is None else StoredTask.from_json(row[0])

    def _read_model(self, task: StoredTask) -> bytes:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table.c.model).where(self.table.c.run == task.run)).first()
        if row is None:
            raise AdvisorFailure(f"run {task.run!r} has no stored source model")
        return bytes(row[0])

    def create(self, task: StoredTask, model: bytes) -> StoredTask:
        import sqlalchemy as sa

        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(run=task.run, task=task.to_json(), model=model,
                                                        model_sha256=task.model_sha256))
        except sa.exc.IntegrityError:
            pass  # another process stored this run first: its task wins
        stored = self.load(task.run)
        assert stored is not None
        return stored

    def _write_task(self, task: StoredTask) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.run == task.run).values(task=task.to_json()))


class FileTaskStore(TaskStore):
    """Tasks as files next to a journal file: ``<run>.task.json`` and ``<run>.model-<sha>.pt``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _task_path(self, run: str) -> Path:
        if not run or "/" in run or "\\" in run or run.startswith("."):
            raise InputError(f"run name {run!r} cannot name a file; use letters, digits, '-', '_' or ':'")
        return self.folder / f"{run}.task.json"

    def load(self, run: str) -> StoredTask | None:
        path = self._task_path(run)
        if not path.is_file():
            return None
        return StoredTask.from_json(path.read_text())

    def _model_path(self, task: StoredTask) -> Path:
        return self.folder / f"{task.run}.model-{task.model_sha256[:16]}.pt"

    def _read_model(self, task: StoredTask) -> bytes:
        path = self._model_path(task)
        if not path.is_file():
            raise AdvisorFailure(f"run {task.run!r}: stored source model {path} is missing")
        return path.read_bytes()

    def create(self, task: StoredTask, model: bytes) -> StoredTask:
        path = self._task_path(task.run)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self._model_path(task), model)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(task.to_json())
        try:
            os.link(tmp, path)  # atomic and fails when another process stored the run first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        stored = self.load(task.run)
        assert stored is not None
        if stored.model_sha256 != task.model_sha256:
            self._model_path(task).unlink(missing_ok=True)  # another process stored the run first
        return stored

    def _write_task(self, task: StoredTask) -> None:
        atomic_write_bytes(self._task_path(task.run), task.to_json().encode())


def open_task_store(storage: str) -> TaskStore:
    """The task store of an Optuna storage string (an RDB URL or a journal file path)."""
    if is_rdb_url(storage):
        return RdbTaskStore(storage)
    return FileTaskStore(Path(storage).expanduser().parent)


# --------------------------------------------------------------------------- inputs from a stored task


def check_data(run: str, stored: dict[str, str], current: dict[str, str]) -> None:
    """Refuse data whose content differs from the run's, naming the first domain that differs."""
    for key in sorted(set(stored) | set(current)):
        if key == "model":
            continue
        if stored.get(key) != current.get(key):
            raise InputError(
                f"the {key.replace('_', ' ')} data differ from run {run!r}'s (fingerprint "
                f"{current.get(key, 'absent')} here, {stored.get(key, 'absent')} in the run); "
                "give the same data, splits and seed, or another --run"
            )


def _is_checkpoint_request(model: str | None) -> bool:
    return model is not None and model not in ARCH_NAMES and model != NO_MODEL


def stored_backbone(store: TaskStore, task: StoredTask) -> Backbone:
    """The run's source model, built from its stored checkpoint (hash checked)."""
    from advisor.models.sources import backbone_from_checkpoint, read_checkpoint

    with _CheckpointFile(store.model(task)) as path:
        return backbone_from_checkpoint(read_checkpoint(path))


def with_backbone(inputs: ResolvedInputs, backbone: Backbone, pretrained: bool, note: str) -> ResolvedInputs:
    """``inputs`` with another source model (its fingerprint recomputed)."""
    return replace(inputs, backbone=backbone, pretrained=pretrained, model_note=note, _model_fp=[])


def inputs_from_store(request: InputRequest, task: StoredTask, store: TaskStore, registry: Any) -> ResolvedInputs:
    """Load ``request``'s data and attach the run's stored model; refuse data that differ.

    No model is built, loaded from a path or pretrained here: the data are loaded as the run's
    model expects them (a checkpoint's input size and channels), then checked against the run's
    data fingerprints.
    """
    from advisor.models.sources import backbone_from_checkpoint, read_checkpoint

    with _CheckpointFile(store.model(task)) as path:
        backbone = backbone_from_checkpoint(read_checkpoint(path))
        if _is_checkpoint_request(task.request.get("model")):
            load_req = replace(request, model=str(path), weights=None)
        else:  # an architecture name loads the data exactly like a torchvision model or the default
            load_req = replace(request, model="mlp" if backbone.spec.input_kind == "features" else "cnn",
                               weights=None)
        data = load_data(load_req, registry)
    inputs = ResolvedInputs(data.source, data.splits, data.target_unlabeled, backbone, task.pretrained,
                            task.model_note, data.scenario, data.expected)
    check_data(task.run, task.data_fingerprints, inputs.fingerprints())
    return inputs
