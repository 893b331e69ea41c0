"""Shared fixtures: an isolated model cache and small generated data sets (never committed)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$TRANSFER_ADVISOR_CACHE`` at a session temp dir so tests never touch ~/.cache."""
    root = tmp_path_factory.mktemp("advisor-cache")
    old = os.environ.get("TRANSFER_ADVISOR_CACHE")
    os.environ["TRANSFER_ADVISOR_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("TRANSFER_ADVISOR_CACHE", None)
    else:
        os.environ["TRANSFER_ADVISOR_CACHE"] = old


@pytest.fixture(autouse=True)
def empty_meta_store(isolated_cache: Path) -> None:
    """Every test starts with an empty default meta-store: a run warm-starts from the store's records, so one
    test's runs must not change another's trials."""
    import shutil

    shutil.rmtree(isolated_cache / "meta", ignore_errors=True)


@pytest.fixture
def make_digits_folder() -> Callable[..., Path]:
    """Write sklearn digits as PNGs in class folders (sizes vary per image); returns the root."""

    def make(
        root: Path,
        classes: tuple[int, ...] = (0, 1, 2),
        per_class: int = 8,
        offset: int = 0,
        rgb: bool = False,
    ) -> Path:
        from PIL import Image
        from sklearn.datasets import load_digits

        digits = load_digits()
        for c in classes:
            folder = root / f"digit{c}"
            folder.mkdir(parents=True, exist_ok=True)
            rows = np.flatnonzero(digits.target == c)[offset : offset + per_class]
            for k, i in enumerate(rows):
                pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
                im = Image.fromarray(pixels, "L").resize((8 + 4 * (k % 3), 8 + 4 * (k % 3)))
                if rgb:
                    im = im.convert("RGB")
                im.save(folder / f"{i}.png")
        return root

    return make


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (``tests/postgres.py``); skipped without PostgreSQL outside CI."""
    from tests.postgres import find_bin_dir, postgres_cluster

    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found; CI must run the PostgreSQL tests")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH")
    with postgres_cluster(bin_dir) as url:
        yield url
