"""Issue 2 section 6 from the command line: each bad input is one stderr line, exit code 2, no traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _advisor(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``advisor`` script (or its entry point) in a clean environment."""
    exe = shutil.which("advisor")
    cmd = [exe] if exe else [sys.executable, "-c", "from advisor.cli import main; main()"]
    env = {**os.environ, "TRANSFER_ADVISOR_NO_PLUGINS": "1", "COLUMNS": "200"}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _table(path: Path, d: int = 4, n: int = 40, classes: int = 2) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    np.savez(path, X=rng.normal(size=(n, d)) + y[:, None], y=y)
    return path


def _images(root: Path, classes: tuple[str, ...] = ("a", "b"), per_class: int = 7) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = 10 + i
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(root / c / f"{i}.png")
    return root


def _case(tmp: Path, case: str) -> tuple[list[str], str]:
    """The arguments of one bad-input case and a regex its error line must match."""
    good = _table(tmp / "good.npz")
    if case == "missing path":
        return ["--source", str(good), "--target", str(tmp / "missing")], r"path not found: .*missing"
    if case == "empty directory":
        (tmp / "empty").mkdir()
        return ["--source", str(good), "--target", str(tmp / "empty")], r"directory .*empty is empty"
    if case == "class folder without images":
        root = _images(tmp / "imgs")
        (root / "ghost").mkdir()
        return ["--source", str(_images(tmp / "src")), "--target", str(root)], \
            r"class folder .*ghost has no images"
    if case == "corrupt image":
        root = _images(tmp / "imgs")
        (root / "b" / "broken.png").write_bytes(b"not an image at all")
        return ["--source", str(_images(tmp / "src")), "--target", str(root)], \
            r"cannot read image .*b/broken\.png"
    if case == "single-class target":
        return ["--source", str(good), "--target", str(_table(tmp / "one.npz", classes=1))], \
            r"target has a single class"
    if case == "nan in table":
        X = np.ones((30, 3))
        X[7, 1] = np.nan
        np.savez(tmp / "nan.npz", X=X, y=np.arange(30) % 2)
        return ["--source", str(good), "--target", str(tmp / "nan.npz")], r"NaN at row 7, column 1"
    if case == "inf in csv":
        lines = ["f1,f2,label"] + [f"{i},{'inf' if i == 4 else i},{i % 2}" for i in range(30)]
        (tmp / "inf.csv").write_text("\n".join(lines) + "\n")
        return ["--source", str(good), "--target", str(tmp / "inf.csv")], \
            r"an infinite value at line 6, column 'f2'"
    if case == "feature dimensions differ":
        return ["--source", str(_table(tmp / "s5.npz", d=5)), "--target", str(good)], \
            r"feature dimensions differ: source has 5 features, target has 4"
    if case == "unknown scenario":
        return ["--demo", "no-such-scenario"], r"unknown scenario 'no-such-scenario'; known scenario names"
    if case == "unknown architecture":
        return ["--source", str(good), "--target", str(good), "--model", "resnet7"], \
            r"unknown architecture 'resnet7'; known: cnn, mlp, resnet18"
    if case == "unknown strategy":
        return ["--source", str(good), "--target", str(good), "--strategies", "nonsense"], \
            r"unknown strategy 'nonsense'; known strategy names"
    if case == "too many threads":
        return ["--demo", "--threads", "100000"], r"--threads must be between 1 and \d+ \(4 per core"
    if case == "image size too large":
        return ["--source", str(good), "--target", str(good), "--image-size", "100000"], \
            r"--image-size must be between 8 and 1024 pixels, got 100000"
    if case == "negative timeout":
        return ["--demo", "--timeout", "-5"], r"--timeout must be a positive number of seconds, got -5"
    if case == "zero epochs":
        return ["--demo", "--max-epochs", "0"], r"--max-epochs must be at least 1, got 0"
    if case == "demo ignores val fraction":
        return ["--demo", "--val-fraction", "1.5"], r"--val-fraction cannot be combined with --demo"
    if case in ("image over the pixel limit", "image far over the pixel limit"):
        from PIL import Image

        side = 12000 if case == "image over the pixel limit" else 20000  # Pillow: warning / error
        root = _images(tmp / "imgs")
        Image.new("1", (side, side)).save(root / "a" / "huge.png")  # 1 bit per pixel: cheap to write
        return ["--source", str(_images(tmp / "src")), "--target", str(root)], \
            rf"cannot read image .*a/huge\.png: {side * side} pixels is over the limit of \d+ pixels"
    if case == "untrusted checkpoint":
        import pickle

        (tmp / "evil.pt").write_bytes(pickle.dumps(_Evil(), protocol=4))
        return ["--target", str(good), "--model", str(tmp / "evil.pt")], \
            r"cannot read .*evil\.pt as a Transfer Advisor checkpoint: torch's safe loader \(weights_only=True\) " \
            r"refused it \(.+\); loading it without that check could run arbitrary code"
    raise AssertionError(case)


class _Evil:
    """A pickle that would run a command if it were ever unpickled without restrictions."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


CASES = [
    "missing path", "empty directory", "class folder without images", "corrupt image",
    "single-class target", "nan in table", "inf in csv", "feature dimensions differ",
    "unknown scenario", "unknown architecture", "unknown strategy",
    "too many threads", "image size too large", "negative timeout", "zero epochs", "demo ignores val fraction",
    "image over the pixel limit", "image far over the pixel limit", "untrusted checkpoint",
]


def _check(returncode: int, stderr: str, stdout: str, pattern: str, run_dir: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert returncode == 2, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout
    assert len(lines) == 1, stderr
    assert lines[0].startswith("advisor: error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert not run_dir.exists() or not any(run_dir.rglob("*.pt"))  # nothing was trained


@pytest.mark.slow  # each case starts a fresh interpreter (about 5 s on 2 shared cores)
@pytest.mark.parametrize("case", CASES)
def test_bad_input_from_the_command_line(tmp_path, case):
    args, pattern = _case(tmp_path, case)
    run_dir = tmp_path / "run"
    out = _advisor(["recommend", *args, "--run-dir", str(run_dir), "--trials", "0"], tmp_path)
    _check(out.returncode, out.stderr, out.stdout, pattern, run_dir)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_in_process(tmp_path, case, capsys, monkeypatch):
    """The same cases through ``advisor.cli.main`` in this process (fast)."""
    from advisor.cli import main

    monkeypatch.setenv("TRANSFER_ADVISOR_NO_PLUGINS", "1")
    monkeypatch.chdir(tmp_path)
    args, pattern = _case(tmp_path, case)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["recommend", *args, "--run-dir", str(run_dir), "--trials", "0"])
    out = capsys.readouterr()
    stderr = "\n".join(line for line in out.err.splitlines() if not line.startswith("advisor: warning: plugin"))
    _check(int(info.value.code), stderr, out.out, pattern, run_dir)
