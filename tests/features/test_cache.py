"""The frozen-prefix cache: correct outputs, memoised, keyed by content, persisted on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.data.domain import Domain
from advisor.features.cache import FeatureCache, backbone_fingerprint, fingerprints
from advisor.models.architectures import build
from advisor.models.backbone import ModelSpec


@pytest.fixture
def backbone():
    torch.manual_seed(0)
    return build(ModelSpec("cnn", "images", (1, 8, 8), {"width": 4}), 3, seed=0)


@pytest.fixture
def domain():
    rng = np.random.default_rng(0)
    X = rng.random((10, 1, 8, 8), dtype=np.float32)
    return Domain("d", X, rng.integers(0, 3, 10), ("a", "b", "c"), "images")


def test_prefix_matches_direct_forward(backbone, domain):
    cache = FeatureCache(batch_size=3)
    x = torch.from_numpy(domain.X)
    backbone.eval()
    for k in range(backbone.depth + 1):
        with torch.no_grad():
            want = backbone.forward_blocks(x, 0, k)
        got = cache.prefix(backbone, domain, k)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-6)
    assert cache.features(backbone, domain).shape == (10, backbone.feature_dim)
    assert cache.features(backbone, domain).dtype == np.float32


def test_prefix_is_memoised_and_keeps_training_mode(backbone, domain):
    cache = FeatureCache()
    backbone.train()
    a = cache.prefix(backbone, domain, 2)
    assert backbone.training  # eval mode only while computing
    b = cache.prefix(backbone, domain, 2)
    assert a is b
    assert (cache.hits, cache.misses) == (1, 1)


def test_fingerprint_follows_content(backbone):
    fp = backbone_fingerprint(backbone)
    clone = backbone.with_new_head(3, seed=5)
    assert backbone_fingerprint(clone) != fp  # new head, new weights
    assert fingerprints(clone)[:-1] == fingerprints(backbone)[:-1]  # same blocks, same prefixes
    other = build(backbone.spec, 3, seed=1)
    assert backbone_fingerprint(other) != fp
    same = build(backbone.spec, 3, seed=0)
    assert backbone_fingerprint(same) == fp


def test_disk_cache_survives_a_new_cache(backbone, domain, tmp_path):
    first = FeatureCache(root=tmp_path).prefix(backbone, domain, 1)
    assert list(tmp_path.glob("*.pt"))
    fresh = FeatureCache(root=tmp_path)
    again = fresh.prefix(backbone, domain, 1)
    assert fresh.hits == 1 and torch.equal(first, again)


def test_logits_need_a_source_head(backbone, domain):
    cache = FeatureCache()
    assert cache.logits(backbone, domain) is None
    backbone.source_classes = ("a", "b", "c")
    out = cache.logits(backbone, domain)
    assert out is not None and out.shape == (10, 3)
    backbone.eval()
    with torch.no_grad():
        want = backbone(torch.from_numpy(domain.X)).numpy()
    assert np.allclose(out, want, atol=1e-5)


def test_bad_depth_is_refused(backbone, domain):
    with pytest.raises(ValueError):
        FeatureCache().prefix(backbone, domain, backbone.depth + 1)


def test_copy_with_new_head_reuses_prefix_and_training_invalidates(backbone, domain):
    cache = FeatureCache()
    a = cache.prefix(backbone, domain, 2)
    clone = backbone.with_new_head(3, seed=1)
    assert cache.prefix(clone, domain, 2) is a
    with torch.no_grad():
        next(clone.blocks[1].parameters()).add_(1.0)  # in place, as an optimiser step would
    b = cache.prefix(clone, domain, 2)
    assert b is not a and not torch.allclose(a, b)
    assert cache.prefix(clone, domain, 1) is cache.prefix(backbone, domain, 1)  # block 0 unchanged
