"""The package reads like a table of contents (docs/architecture.md): the commands at the top,
every other module in a folder of its concern, no two names a letter apart, folders that import
each other in one direction only, and an ML core that imports none of the infrastructure."""

import ast
import itertools
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ch12_lightning"
COMMANDS = {"train", "eval", "predict", "export", "cache"}
ML_CORE = ("data", "models")
INFRASTRUCTURE = {"run", "callbacks", "trained", "checks", "sweeps", "cluster"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _folder(path: Path) -> str:
    """The package folder a module lives in (``.`` for the top)."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else "."


def _imported_folders(path: Path) -> set[str]:
    """The package folders whose modules ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ch12_lightning."):
            found.add(node.module.split(".")[1])
    return found


def test_the_top_holds_the_commands_alone():
    top = {path.stem for path in _modules() if _folder(path) == "."}
    assert top == COMMANDS | {"__init__"}


def _one_letter_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def test_no_two_names_are_a_letter_apart():
    names = {path.stem for path in _modules()} | {p.name for p in PACKAGE.rglob("*") if p.is_dir()}
    names -= {"__init__", "__pycache__"}
    close = [(a, b) for a, b in itertools.combinations(sorted(names), 2) if _one_letter_apart(a, b)]
    assert close == []


def test_folders_import_each_other_one_way():
    edges: dict[str, set[str]] = defaultdict(set)
    for path in _modules():
        if _folder(path) != ".":
            edges[_folder(path)] |= _imported_folders(path) - {_folder(path)}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(
            step == goal or (step not in seen and reaches(step, goal, seen | {step}))
            for step in edges[start]
        )

    assert [folder for folder in sorted(edges) if reaches(folder, folder)] == []


def test_the_ml_core_imports_none_of_the_infrastructure():
    for path in _modules():
        if _folder(path) in ML_CORE:
            assert not _imported_folders(path) & INFRASTRUCTURE, path
