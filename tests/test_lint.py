"""The code stays ruff clean: a lint error fails the suite like any other regression."""

import subprocess
import sys

from tests.helpers.runs import REPO

# Everything with code in it: the notebooks and benchmarks as much as the package.
CHECKED = ("src", "tests", "benchmarks", "notebooks")


def test_ruff_check():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *CHECKED],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
