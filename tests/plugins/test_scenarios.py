"""Built-in digits scenarios: registration, splits, determinism, and (slow) the shift's promise."""

from __future__ import annotations

import subprocess
import sys

import advisor_plugins.scenarios as builtin
import numpy as np
import pytest
from advisor_plugins.scenarios.digits import (
    CLASSES,
    SplitSizes,
    blur,
    load_digits_16,
    split_pools,
    to_unit,
    upsample,
)

from advisor.data.domain import Domain
from advisor.plugin.contracts import Scenario, ScenarioData
from advisor.plugin.registry import build_registry

NAMES = ("digits-shift", "digits-conflict", "digits-distant")
N_DIGITS = 1797


@pytest.fixture(scope="module")
def registry():
    reg = build_registry(load_entry_points=False, plugins=[("builtin_scenarios", builtin)])
    assert reg.failures == []
    return reg


@pytest.fixture(scope="module")
def built(registry) -> dict[str, ScenarioData]:
    return {name: registry.scenario(name).build(0) for name in NAMES}


def _rows(x: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.ascontiguousarray(x).reshape(len(x), -1)]


def test_three_scenarios_register_with_their_documentation(registry) -> None:
    assert set(registry.scenarios) == set(NAMES)
    for name in NAMES:
        sc = registry.scenario(name)
        assert isinstance(sc, Scenario)
        assert sc.name == name and len(sc.description) > 10 and len(sc.expected) > 40
        assert registry.owner[("scenario", name)] == "builtin_scenarios"
    assert "no_gain" in registry.scenario("digits-distant").expected
    assert "transfer_helps" in registry.scenario("digits-shift").expected


def test_importing_the_plugin_loads_neither_torch_nor_sklearn() -> None:
    code = ("import sys, advisor_plugins.scenarios; "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_upsample_is_bilinear_with_half_pixel_centres() -> None:
    # align_corners=False: output pixel centres at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25
    img = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    np.testing.assert_allclose(upsample(img, 4)[0], np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-7)
    np.testing.assert_allclose(upsample(img.transpose(0, 2, 1), 4)[0].T, upsample(img, 4)[0], atol=1e-7)


def test_digits_are_sklearns_upsampled() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = load_digits_16()
    assert x.shape == (N_DIGITS, 16, 16) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() == 1.0
    np.testing.assert_array_equal(y, digits.target)
    np.testing.assert_allclose(x, upsample(digits.images / 16.0, 16), atol=1e-6)


def test_split_pools_are_disjoint_stratified_and_cover_everything() -> None:
    _, y = load_digits_16()
    sizes = SplitSizes(source=50, train=3, val=7)
    pools = split_pools(y, sizes, seed=4)
    everything = np.concatenate(list(pools.values()))
    assert len(everything) == len(np.unique(everything)) == N_DIGITS
    for name, per_class in (("source", 50), ("train", 3), ("val", 7)):
        assert np.array_equal(np.bincount(y[pools[name]], minlength=10), np.full(10, per_class))
    with pytest.raises(ValueError, match="class"):
        split_pools(y, SplitSizes(source=170, train=3, val=7), seed=0)


@pytest.mark.parametrize("name", NAMES)
def test_build_gives_documented_domains(registry, built, name: str) -> None:
    sizes = registry.scenario(name).sizes
    data = built[name]
    assert data.model == "cnn" and data.target_unlabeled is None
    assert data.expected == registry.scenario(name).expected
    parts: dict[str, Domain] = {"source": data.source, "train": data.target.train,
                                "val": data.target.val, "test": data.target.test}
    for part, d in parts.items():
        assert d.kind == "images" and d.classes == CLASSES
        assert d.X.dtype == np.float32 and d.X.shape[1:] == (1, 16, 16)
        assert d.y.dtype == np.int64 and len(d.y) == len(d.X)
        assert 0.0 <= d.X.min() and d.X.max() <= 1.0 and d.X.max() > 0.5
        assert set(np.unique(d.y)) == set(range(10)), f"{part} misses a class"
    for part, per_class in (("source", sizes.source), ("train", sizes.train), ("val", sizes.val)):
        assert list(parts[part].class_counts().values()) == [per_class] * 10
    expected_test = N_DIGITS - 10 * (sizes.source + sizes.train + sizes.val)
    assert len(data.target.test) == expected_test
    assert data.target.describe() == {"train": 10 * sizes.train, "val": 10 * sizes.val, "test": expected_test}
    assert sizes.train <= 3 and sizes.val >= 5


def test_source_and_target_come_from_disjoint_digits(built) -> None:
    # digits-conflict leaves the images untouched: match every row back to the original digits.
    x, _ = load_digits_16()
    index = {row: i for i, row in enumerate(_rows(x[:, None]))}
    data = built["digits-conflict"]
    used = {}
    for part, d in (("source", data.source), ("train", data.target.train), ("val", data.target.val),
                    ("test", data.target.test)):
        used[part] = {index[r] for r in _rows(d.X)}
        assert len(used[part]) == len(d)
    assert sum(len(v) for v in used.values()) == len(set().union(*used.values())) == N_DIGITS


@pytest.mark.parametrize("name", NAMES)
def test_build_is_deterministic_and_seeds_differ(registry, built, name: str) -> None:
    sc = registry.scenario(name)
    again, other = sc.build(0), sc.build(1)
    first = built[name]
    for a, b in ((first.source, again.source), (first.target.train, again.target.train),
                 (first.target.test, again.target.test)):
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.fingerprint == b.fingerprint
    assert first.source.fingerprint != other.source.fingerprint
    assert first.target.train.fingerprint != other.target.train.fingerprint
    assert first.target.val.fingerprint != other.target.val.fingerprint


def test_conflict_relabels_every_source_digit_consistently(built) -> None:
    x, y = load_digits_16()
    index = {row: i for i, row in enumerate(_rows(x[:, None]))}
    src = built["digits-conflict"].source
    true = y[[index[r] for r in _rows(src.X)]]
    assert np.all(src.y != true)
    mapping = {int(t): set(src.y[true == t].tolist()) for t in range(10)}
    assert all(len(v) == 1 for v in mapping.values())
    assert sorted(next(iter(v)) for v in mapping.values()) == list(range(10))
    # the target keeps the true labels: its images are originals with their own digits
    tgt = built["digits-conflict"].target.train
    assert np.array_equal(tgt.y, y[[index[r] for r in _rows(tgt.X)]])


def test_distant_source_is_a_fixed_pixel_shuffle_and_shift_target_is_blurred(registry, built) -> None:
    src = built["digits-distant"].source.X.reshape(-1, 256)
    x, _ = load_digits_16()
    flat = x.reshape(len(x), -1)
    perm = registry.scenario("digits-distant").pixel_permutation(0, 256)
    originals = {r.tobytes() for r in flat}
    unshuffled = np.empty_like(src)
    unshuffled[:, perm] = src
    assert all(r.tobytes() in originals for r in unshuffled)
    assert not any(r.tobytes() in originals for r in src[:50])
    # the shift's target: originals blurred (weaker gradients), the source: originals as they are
    data = built["digits-shift"]
    blurred = set(_rows(to_unit(blur(x, registry.scenario("digits-shift").sigma))))
    assert all(r in blurred for r in _rows(data.target.test.X))
    assert all(r in originals for r in _rows(data.source.X))
    grad_src = np.abs(np.diff(data.source.X, axis=-1)).mean()
    grad_tgt = np.abs(np.diff(data.target.test.X, axis=-1)).mean()
    assert grad_tgt < 0.9 * grad_src
    assert abs(data.target.test.X.mean() - data.source.X.mean()) < 0.05


# --------------------------------------------------------------------------- slow: training


def _train(model, d: Domain, seed: int, steps: int = 150, lr: float = 1e-3, batch: int = 64):
    """Adam for ``steps`` random mini-batches of ``d`` (as ``bench...train_target``)."""
    import torch

    x, y = torch.from_numpy(d.X), torch.from_numpy(d.y)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(x), generator=gen)[:batch]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model


def _accuracy(model, d: Domain) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(d.X)).argmax(1).numpy() == d.y).mean())


@pytest.mark.slow
def test_shift_finetuning_the_source_model_beats_target_only(registry, tmp_path) -> None:
    """Calibration (seed 0): target-only 76.5%, fine-tuned 83.8% on the 977 test digits."""
    import torch

    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.models.sources import pretrain_source

    torch.set_num_threads(1)
    data = registry.scenario("digits-shift").build(0)
    spec = ModelSpec("cnn", "images", (1, 16, 16))
    source_model, _ = pretrain_source(data.source, spec, seed=0, cache_dir=tmp_path)
    assert _accuracy(source_model, data.source) > 0.9
    target_only = _train(build(spec, 10, seed=0), data.target.train, 0)
    finetuned = _train(source_model.with_new_head(10, seed=0), data.target.train, 0)
    a, b = _accuracy(target_only, data.target.test), _accuracy(finetuned, data.target.test)
    assert b > 0.1 and a > 0.1  # both learnt something
    assert b - a > 0.05, f"fine-tune {b:.3f} vs target-only {a:.3f}"
