"""The contracts plugins implement: Strategy, Metric and Scenario, and what they exchange.

The Protocols below are the contracts: a registered object needs every member they declare
(``protocol_members``), which the host's ``register`` callback checks (``advisor.plugin.registry``).
Optional members have defaults the core applies: a strategy's ``freeze_range`` (``freeze_range``
below), a metric's ``evidence`` and ``applicable``, a scenario's ``default``. Everything else is
plain data (dataclasses) so the core, the plugins, the CLI and the UI share one vocabulary.
Plugins import all of this from ``advisor.plugin``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from advisor.data.domain import Domain, TargetSplits

if TYPE_CHECKING:  # torch and optuna stay out of the CLI's import path
    import optuna

    from advisor.features.cache import FeatureCache
    from advisor.models.backbone import Backbone

#: Keys the search stores with a trial's parameters that are not settings of the fit (``train_rows``: the target
#: rows one search epoch covered); a retrain, a warm start and the report leave them out.
BOOKKEEPING_PARAMS = frozenset({"train_rows"})
StrategyFamily = Literal["instance", "feature", "model", "progressive", "baseline"]
FAMILIES: tuple[str, ...] = ("instance", "feature", "model", "progressive", "baseline")
#: What a strategy is for in the verdict: ``reference`` candidates train on the target alone and
#: the best of them is what every gap is measured against; ``probe`` reads the frozen source
#: features; ``transfer`` is everything else that uses the source.
StrategyRole = Literal["reference", "probe", "transfer"]
ROLES: tuple[str, ...] = ("reference", "probe", "transfer")
MetricKind = Literal["similarity", "transferability"]
METRIC_KINDS: tuple[str, ...] = ("similarity", "transferability")

#: The kinds of evidence a metric may declare (``Metric.evidence``), each with the scale a value of
#: that kind must have. The quick advice reads evidence by kind, never by metric name; when several
#: metrics provide one kind, the first registered (built-ins first) with a finite value is used.
EvidenceKind = Literal["feature_quality", "feature_fit", "domain_distance", "distribution_shift",
                       "class_prior_shift", "label_predictability", "label_likelihood", "source_head_accuracy"]
EVIDENCE_KINDS: dict[str, str] = {
    "feature_quality": "accuracy in [0, 1] of a training-free classifier of the target labels on the frozen "
                       "source features (chance is 1 / classes)",
    "feature_fit": "how well the frozen source features explain the target labels on the metric's own scale "
                   "(higher is better; compare source models on one target, not across targets)",
    "domain_distance": "source-target distance in [0, 2]: 0 indistinguishable, 2 perfectly separable "
                       "(the proxy A-distance scale)",
    "distribution_shift": "a two-sample statistic between source and target features with no fixed scale "
                          "(lower is more similar; a p-value when the metric tests it)",
    "class_prior_shift": "total-variation distance in [0, 1] between the source and target class proportions",
    "label_predictability": "mean log-likelihood (<= 0) of the target label given the source head's predicted "
                            "class: 0 when the prediction determines the label, log(1 / classes) for none",
    "label_likelihood": "mean log-likelihood (<= 0) of the target label through the source head's soft "
                        "predictions: 0 is perfect, minus the label entropy is uninformative",
    "source_head_accuracy": "accuracy in [0, 1] of the source model's own head on the target, classes "
                            "matched by name (zero-shot)",
}

#: ``report(epoch, val_score)``: called by a strategy after every epoch. It may raise
#: ``optuna.TrialPruned`` to stop an unpromising trial; strategies let it propagate.
ReportFn = Callable[[int, float], None]


# --------------------------------------------------------------------------- task


@dataclass(frozen=True)
class Needs:
    """Inputs a strategy or metric requires; unmet needs make it not applicable."""

    source_data: bool = False
    source_model: bool = False
    unlabeled_target: bool = False
    source_predictions: bool = False  # metrics: the source head's predictions on the target


@dataclass
class TransferTask:
    """What a strategy trains on. The target *test* split is not here, by construction.

    ``target_val`` is ``None`` when the winner is retrained on train+val: the strategy then
    trains for ``params["epochs"]`` epochs and reports nothing.
    """

    source: Domain | None
    target_train: Domain
    target_val: Domain | None
    backbone: Backbone
    target_unlabeled: Domain | None = None
    score: str = "accuracy"
    device: str = "cpu"
    seed: int = 0
    max_epochs: int = 30
    batch_size: int = 64
    cache: FeatureCache | None = None
    pretrained: bool = True  # False: the backbone is random (no source model)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.target_train.classes

    @property
    def num_classes(self) -> int:
        return len(self.target_train.classes)

    @property
    def depth(self) -> int:
        return self.backbone.depth

    def unmet(self, needs: Needs) -> str | None:
        """The reason ``needs`` are not met by this task, or ``None``."""
        if needs.source_data and (self.source is None or self.source.y is None):
            return "needs labelled source data (--source)"
        if needs.unlabeled_target and self.target_unlabeled is None:
            return "needs unlabelled target data (--target-unlabeled)"
        if needs.source_model and not self.pretrained:
            return "needs a pretrained source model"
        return None


# --------------------------------------------------------------------------- strategy


@dataclass
class FitResult:
    """A trained target model and how it did on the validation split."""

    model: Any  # torch.nn.Module mapping Domain-convention inputs to logits
    val_score: float | None
    val_pred: np.ndarray | None = None  # predicted class ids on target_val
    epochs: int = 0  # epochs actually trained (the retrain uses this)
    history: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. effective sample size


@dataclass(frozen=True)
class Risk:
    """One reason transfer could hurt, with its level and the evidence it cites."""

    level: Literal["low", "medium", "high"]
    reason: str


@runtime_checkable
class Strategy(Protocol):
    """A transfer strategy. Attributes: ``name``, ``family``, ``role``, ``description``, ``needs``.

    Optional: ``freeze_range(task) -> (lowest, highest)``, the freeze depths (frozen leading
    blocks) the strategy is meant for; the training engine clamps ``params["freeze"]`` into it.
    Without it every depth ``0 .. task.depth`` is allowed (``freeze_range`` below).
    Optional: ``deterministic = True`` when ``fit`` returns the same predictions whatever ``task.seed``
    (a convex fit to convergence from a fixed start): the advisor then fits a setting once where it
    would repeat it over seeds, and counts that one fit for every seed (``is_deterministic`` below).
    """

    name: str
    family: StrategyFamily
    role: StrategyRole
    description: str
    needs: Needs

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        """A sensible setting, enqueued as the first trial of every search."""
        ...

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        """Suggest this strategy's hyperparameters on ``trial`` and return them."""
        ...

    def fit(
        self, task: TransferTask, params: dict[str, Any], report: ReportFn | None
    ) -> FitResult:
        """Train for real on ``task`` with ``params``; call ``report`` every epoch."""
        ...

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        """Strategy-specific negative-transfer reasons, citing the signals."""
        ...


def is_deterministic(strategy: object) -> bool:
    """Whether ``strategy`` declares that its fit does not depend on the seed (``deterministic = True``)."""
    return getattr(strategy, "deterministic", False) is True


def default_freeze_range(task: TransferTask) -> tuple[int, int]:
    """Every freeze depth the backbone has: ``(0, task.depth)``."""
    return 0, int(task.depth)


def freeze_range(strategy: object, task: TransferTask) -> tuple[int, int]:
    """The freeze depths ``strategy`` declares for ``task`` (the default when it declares none)."""
    declared = getattr(strategy, "freeze_range", None)
    low, high = declared(task) if callable(declared) else default_freeze_range(task)
    low, high = max(0, int(low)), min(int(task.depth), int(high))
    if low > high:
        raise ValueError(f"freeze range ({low}, {high}) is empty for a backbone of depth {task.depth}")
    return low, high


# --------------------------------------------------------------------------- metric


@dataclass
class MetricInputs:
    """What metrics read: features of both domains (train+val target only, never test)."""

    target_features: np.ndarray
    target_labels: np.ndarray | None
    target_classes: tuple[str, ...]
    source_features: np.ndarray | None = None
    source_labels: np.ndarray | None = None
    source_classes: tuple[str, ...] = ()
    source_probs: np.ndarray | None = None  # source head's softmax on the target rows
    source_probs_on_source: np.ndarray | None = None  # softmax on the source rows (label-shift BBSE)
    unlabeled_target_features: np.ndarray | None = None
    device: str = "cpu"
    seed: int = 0


@dataclass
class MetricResult:
    """A metric's value, with its direction and a sentence a person can read."""

    value: float
    higher_is_better: bool
    interpretation: str
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: The metric's evidence kind (``EVIDENCE_KINDS``), filled from its declaration by ``compute_signals``.
    evidence: str | None = None

    @property
    def direction(self) -> str:
        return "higher_is_better" if self.higher_is_better else "lower_is_better"

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "p_value": self.p_value,
            "direction": self.direction,
            "interpretation": self.interpretation,
            **({"details": self.details} if self.details else {}),
        }


@runtime_checkable
class Metric(Protocol):
    """A similarity or transferability metric. Attributes: ``name``, ``kind``, ``description``, ``needs``.

    Optional: ``evidence``, one of ``EVIDENCE_KINDS`` when the value has that kind's scale (the quick
    advice reads it; ``None`` or absent: shown, not read), and ``applicable(inputs) -> str | None``,
    the reason the metric cannot run (without it, unmet ``needs`` decide).
    """

    name: str
    kind: MetricKind
    description: str
    needs: Needs

    def compute(self, inputs: MetricInputs) -> MetricResult: ...


# --------------------------------------------------------------------------- scenario


@dataclass
class ScenarioData:
    """A built-in scenario's data with its fixed splits and its default model."""

    source: Domain | None
    target: TargetSplits
    model: str = "cnn"
    target_unlabeled: Domain | None = None
    expected: str = ""  # what a correct advisor should conclude


@runtime_checkable
class Scenario(Protocol):
    """A named built-in data set. Attributes: ``name``, ``description``, ``expected``.

    Optional: ``default: bool``, true for the scenario a bare ``--demo`` runs (the first such one).
    """

    name: str
    description: str
    expected: str

    def build(self, seed: int = 0) -> ScenarioData: ...



def protocol_members(protocol: type) -> tuple[str, ...]:
    """The public attributes and methods ``protocol`` declares: what a registered object must have."""
    names = list(getattr(protocol, "__annotations__", {}))
    names += [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
    return tuple(dict.fromkeys(n for n in names if not n.startswith("_")))
