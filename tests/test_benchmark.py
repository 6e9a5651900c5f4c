"""The throughput benchmark still runs end to end (on small generated data)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_throughput_benchmark_prints_figures_and_ratios(mnist_dir: Path, tmp_path: Path):
    command = [
        sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--data-dir", str(mnist_dir),
        "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out"),
        "--batch-sizes", "64", "--epochs", "2", "--naive-epochs", "1", "--val-size", "100",
        "--rounds", "1",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for pipeline in ("naive", "limit", "limit_fused", "ours"):
        (row,) = [line.split() for line in lines if line.split()[1:2] == [pipeline]]
        assert float(row[2]) > 0  # samples per second
    for yardstick in ("limit", "limit_fused", "naive"):
        assert any(f" ours/{yardstick} " in line for line in lines), yardstick
    assert any(line.startswith("skipped: no celeba folder") for line in lines)
    for part in ("--help", "--cfg job", "launch to first training step", "beside a busy process"):
        assert any(part in line for line in lines), part
