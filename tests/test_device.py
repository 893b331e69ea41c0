"""Threads under load: defaults sized to the free cores, bounded --threads, a passive OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from advisor.device import check_threads, cpu_cores, default_threads, set_threads
from advisor.errors import InputError


@pytest.mark.parametrize(("cores", "busy", "expected"), [(2, 0.0, 2), (2, 1.0, 1), (2, 3.0, 1), (16, 3.0, 13),
                                                          (4, 1.4, 3), (4, 1.6, 2)])
def test_default_threads_take_the_cores_not_already_busy(cores, busy, expected):
    assert default_threads(cores, busy) == expected


def test_threads_are_bounded_and_given_threads_win():
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        assert 1 <= set_threads(None) <= cpu_cores()
        assert check_threads(cpu_cores() * 4) == cpu_cores() * 4
        for bad in (0, -1, cpu_cores() * 4 + 1, 100000):
            with pytest.raises(InputError, match="--threads must be between 1 and"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)


def _policy(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "TRANSFER_ADVISOR_LEGACY_THREADS")}
    code = "import os, advisor; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_openmp_waits_passively_unless_the_user_chose():
    assert _policy() == "PASSIVE"
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert _policy(TRANSFER_ADVISOR_LEGACY_THREADS="1") == "unset"


def test_legacy_policy_keeps_torchs_thread_count(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("TRANSFER_ADVISOR_LEGACY_THREADS", "1")
    try:
        torch.set_num_threads(1)
        assert set_threads(None) == 1  # untouched
    finally:
        torch.set_num_threads(before)
