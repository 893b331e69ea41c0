"""The contracts plugins implement: Strategy, Metric and Scenario, and what they exchange.

A plugin object needs the attributes listed in ``REQUIRED_ATTRIBUTES``; the host's
``register`` callback checks them (see ``advisor.plugin.registry``). Everything here is plain data
(dataclasses) so the core, the plugins, the CLI and the UI share one vocabulary.
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

StrategyFamily = Literal["instance", "feature", "model", "progressive", "baseline"]
FAMILIES: tuple[str, ...] = ("instance", "feature", "model", "progressive", "baseline")
#: What a strategy is for in the verdict: ``reference`` candidates train on the target alone and
#: the best of them is what every gap is measured against; ``probe`` reads the frozen source
#: features; ``transfer`` is everything else that uses the source.
StrategyRole = Literal["reference", "probe", "transfer"]
ROLES: tuple[str, ...] = ("reference", "probe", "transfer")
MetricKind = Literal["similarity", "transferability"]
METRIC_KINDS: tuple[str, ...] = ("similarity", "transferability")

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
    """A transfer strategy. Attributes: ``name``, ``family``, ``role``, ``description``, ``needs``."""

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
    """A similarity or transferability metric. Attributes: ``name``, ``kind``, ``needs``."""

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
    """A named built-in data set. Attributes: ``name``, ``description``, ``expected``."""

    name: str
    description: str
    expected: str

    def build(self, seed: int = 0) -> ScenarioData: ...


REQUIRED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "strategy": ("name", "family", "role", "description", "needs", "default_params", "search_space",
                 "fit", "risks"),
    "metric": ("name", "kind", "description", "needs", "compute"),
    "scenario": ("name", "description", "expected", "build"),
}
