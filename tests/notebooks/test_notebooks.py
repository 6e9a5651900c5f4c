"""The chapter's notebooks (notebooks/): stored without outputs, and executed top to bottom in a
fresh Jupyter kernel, on the real data sets where CH12_REAL_DATA names them, on generated ones
otherwise."""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.celeba_tree import make_celeba
from tests.helpers.mnist_files import make_mnist
from tests.helpers.runs import REAL_DATA, REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# The API's calls that answer with a picture (api/figures.py).
FIGURE_CALLS = (".learning_curves(", ".confusion_matrix(", ".misclassified(")
EPOCHS = "2"  # the notebooks' own runs shortened: what is checked is that every cell runs


def test_there_are_the_chapters_four_notebooks_stored_without_outputs():
    assert [path.name[:2] for path in NOTEBOOKS] == ["1_", "2_", "3_", "4_"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if REAL_DATA:
        return Path(REAL_DATA)
    root = make_mnist(tmp_path_factory.mktemp("data"))
    make_celeba(root / "celeba")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_a_notebook_runs_top_to_bottom(
    path: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CH12_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CH12_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CH12_NOTEBOOK_EPOCHS", EPOCHS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO / "src"), str(REPO)]))
    copy = shutil.copy(path, tmp_path)
    notebook = nbformat.read(copy, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]  # fmt: skip
    assert not errors, errors
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    for cell in notebook.cells:  # a figure a person sees, with no magic, in every figure cell
        if cell.cell_type == "code" and any(call in cell.source for call in FIGURE_CALLS):
            assert any("image/png" in output.get("data", {}) for output in cell.outputs), cell
