"""The throughput benchmark still runs end to end (on small generated data)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.runs import REAL_DATA, REPO


@pytest.mark.slow
def test_throughput_benchmark_prints_figures_and_ratios(mnist_dir: Path, tmp_path: Path):
    command = [
        sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--data-dir", str(mnist_dir),
        "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out"),
        "--batch-sizes", "64", "--epochs", "2", "--naive-epochs", "1", "--val-size", "100",
        "--rounds", "1", "--recipe-epochs", "2", "--recipe-pairs", "1",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for name in ("ours", "hand"):  # the whole recipe, both ways, tested on the same digits
        (line,) = [line for line in lines if line.startswith(f"{name:>5}: ")]
        assert 0.5 < float(line.rsplit("test acc ", 1)[1]) <= 1
    assert any(line.startswith("ours/hand wall time ") for line in lines)
    for pipeline in ("naive", "limit", "limit_fused", "ours"):
        (row,) = [line.split() for line in lines if line.split()[1:2] == [pipeline]]
        assert float(row[2]) > 0  # samples per second
    for yardstick in ("limit", "limit_fused", "naive"):
        assert any(f" ours/{yardstick} " in line for line in lines), yardstick
    assert any("skipped, no celeba folder" in line for line in lines)
    parts = ("--help", "--cfg job", "import lightning", "launch to first training step")
    floors = [line for line in lines if "ms a step, hand/this" in line]
    assert len(floors) == 3 and "bare LightningModule, pre-cut batches" in floors[-1]
    for part in (*parts, "beside a busy process"):
        assert any(part in line for line in lines), part


@pytest.mark.slow
@pytest.mark.skipif(not REAL_DATA, reason="CH12_REAL_DATA is not set")
def test_celeba_part_measures_the_practice_data_and_a_larger_copy(tmp_path: Path):
    command = [
        sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--data-dir", REAL_DATA,
        "--cache-dir", str(tmp_path / "cache"), "--parts", "celeba", "--rounds", "1",
        "--celeba-images", "1200",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "practice (real images, 32 px gray): 2750 images" in out
    assert "1,200-image copy" in out and "images/s" in out and "extrapolated" in out
    practice_bytes, copy_bytes = map(int, re.findall(r"\((\d+) bytes per image\)", out))
    assert 32 * 32 <= practice_bytes < 32 * 32 * 1.05 + 16  # 8-bit gray, its target, container
    assert 3 * 64 * 64 <= copy_bytes < 3 * 64 * 64 * 1.05 + 16
