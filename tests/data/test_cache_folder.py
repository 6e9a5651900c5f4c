"""``./ch12 cache list|prune``: the CelebA caches are shown and pruned, MNIST is left alone.

Fake caches of a few bytes, whose last use is set with os.utime: no data, no torch.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ch12_lightning.data import cache_folder
from tests.helpers.runs import command

DAY = 86400.0
NOW = time.time()


def cache_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return command("cache", *args, env=env, timeout=60)


def make_cache(cache_dir: Path, key: str, days_ago: float, size: int = 1000, **meta) -> Path:
    """A format-2 cache: ``<key>.pt`` of ``size`` bytes and its sidecar, last used days ago."""
    folder = cache_dir / "celeba"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.pt").write_bytes(b"\0" * size)
    sidecar = {
        "format": 2,
        "dataset": "celeba",
        "summary": meta.get("summary", f"Smiling, cache {key}"),
        "settings": meta.get("settings", {"attribute": "Smiling", "n_per_class": 5, "seed": 1}),
        "images": meta.get("images", 20),
        "bytes": size,
        "created": "2024-05-01T10:00:00",
    }
    (folder / f"{key}.json").write_text(json.dumps(sidecar))
    used = NOW - days_ago * DAY
    os.utime(folder / f"{key}.pt", (used - DAY, used - DAY))
    os.utime(folder / f"{key}.json", (used, used))
    return folder


def make_file(path: Path, size: int, days_ago: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    os.utime(path, (NOW - days_ago * DAY,) * 2)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """Three caches last used 1, 10 and 40 days ago, a format-1 one (60 days), a temporary left
    by a killed writer (2 days), and an MNIST extraction of 2,000 bytes."""
    root = tmp_path / "cache"
    make_cache(root, "recent", 1, images=20, summary="Smiling: 5 per class, 20 images")
    make_cache(root, "middle", 10, size=3000)
    make_cache(root, "old", 40)
    make_file(root / "celeba" / "ancient.pt", 500, days_ago=60)
    make_file(root / "celeba" / ".killed.pt.x1y2z3.tmp", 700, days_ago=2)
    make_file(root / "mnist" / "0123456789abcdef" / "MNIST" / "raw" / "train-images", 2000, 90)
    return root


def names(cache_dir: Path) -> set[str]:
    return {path.name for path in (cache_dir / "celeba").iterdir()}


def mnist_intact(cache_dir: Path) -> bool:
    return (cache_dir / "mnist" / "0123456789abcdef" / "MNIST" / "raw" / "train-images").is_file()


def test_entries_describe_each_cache_most_recently_used_first(cache_dir: Path):
    entries = cache_folder.cache_entries(cache_dir)
    assert [e.key for e in entries] == [
        "recent",
        ".killed.pt.x1y2z3.tmp",
        "middle",
        "old",
        "ancient",
    ]
    recent = entries[0]
    assert recent.images == 20 and recent.summary == "Smiling: 5 per class, 20 images"
    assert recent.settings == {"attribute": "Smiling", "n_per_class": 5, "seed": 1}
    assert recent.last_used == pytest.approx(NOW - DAY)  # the sidecar's mtime, not the .pt's
    assert recent.size == 1000 + (cache_dir / "celeba" / "recent.json").stat().st_size
    assert entries[-1].kind == "format 1" and entries[-1].size == 500
    assert "older version" in entries[-1].describe()
    assert entries[1].is_temporary and entries[1].size == 700


def test_list_shows_caches_old_format_temporaries_and_other_folders(cache_dir: Path):
    result = cache_command("--cache-dir", str(cache_dir), "list")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == cache_folder.cache_folder_summary(cache_dir, hint=False)
    assert "cache list" not in out.splitlines()[0]  # not its own advice
    recent = out.index("  recent  ")
    assert out.index("  middle  ") > recent and out.index("  ancient  ") > out.index("  old  ")
    assert "20 images" in out and "Smiling: 5 per class, 20 images" in out
    assert "attribute=Smiling n_per_class=5 seed=1" in out
    assert "last used " in out and "(10 days ago)" in out
    ancient = out[out.index("  ancient  ") :]
    assert "no description, written by an older version" in ancient.splitlines()[1]
    temporary = out[out.index(".killed.pt.x1y2z3.tmp") :].splitlines()
    assert "temporary file left by an interrupted write (prune removes it)" in temporary[1]
    assert "Other folders in" in out and "  MNIST  2.00 kB" in out


def test_summary_line_counts_caches_temporaries_and_folders(cache_dir: Path):
    celeba = sum(p.stat().st_size for p in (cache_dir / "celeba").iterdir())
    caches_size = celeba - 700
    total = cache_folder.human_size(celeba + 2000)
    assert cache_folder.cache_folder_summary(cache_dir) == (
        f"the cache folder {cache_dir} holds {total}: 4 CelebA caches "
        f"({cache_folder.human_size(caches_size)}), 1 leftover temporary file (700 B), "
        "MNIST (2.00 kB); `./ch12 cache list` shows them, `./ch12 cache prune` removes old ones"
    )


def test_summary_never_raises_for_a_missing_or_empty_folder(tmp_path: Path):
    missing = tmp_path / "nothing"
    assert cache_folder.cache_folder_summary(missing) == (
        f"the cache folder {missing} does not exist yet (nothing cached)"
    )
    assert cache_folder.cache_folder_summary(tmp_path) == f"the cache folder {tmp_path} is empty"
    a_file = make_file(tmp_path / "a_file", 3, 0)
    assert "does not exist" in cache_folder.cache_folder_summary(a_file)


@pytest.mark.parametrize(
    ("args", "left"),
    [
        (["--older-than", "20"], {"recent", "middle"}),
        (["--older-than", "0.5"], set()),
        (["--keep-last", "2"], {"recent", "middle"}),
        (["--keep-last", "0"], set()),
        # Both given: a cache goes only if it is old and outside the kept ones.
        (["--older-than", "5", "--keep-last", "3"], {"recent", "middle", "old"}),
        (["--all"], set()),
    ],
    ids=["older-than", "older-than-all", "keep-last", "keep-last-0", "both", "all"],
)
def test_prune_removes_the_selected_caches_and_leftovers_only(
    cache_dir: Path, args: list[str], left: set[str]
):
    result = cache_command("--cache-dir", str(cache_dir), "prune", *args)
    assert result.returncode == 0, result.stderr
    expected = {f"{key}.{ext}" for key in left for ext in ("pt", "json")}
    assert names(cache_dir) == expected  # the temporary always goes, MNIST always stays
    assert mnist_intact(cache_dir)
    assert "removed .killed.pt.x1y2z3.tmp (700 B)" in result.stdout
    gone = {"recent", "middle", "old", "ancient"} - left
    for key in gone:
        assert f"removed CelebA cache {key} (" in result.stdout
    freed = sum(1 for line in result.stdout.splitlines() if line.startswith("freed "))
    assert freed == 1 and f"({len(gone) + 1} entries)" in result.stdout


def test_prune_reports_the_exact_space_freed(cache_dir: Path):
    folder = cache_dir / "celeba"
    old = sum((folder / f"old.{ext}").stat().st_size for ext in ("pt", "json"))
    lines = cache_folder.prune(
        cache_folder.select_for_pruning(cache_folder.cache_entries(cache_dir), older_than_days=30)
    )
    assert lines[-1] == f"freed {cache_folder.human_size(old + 500 + 700)} (3 entries)"
    assert names(cache_dir) == {f"{k}.{e}" for k in ("recent", "middle") for e in ("pt", "json")}


def test_dry_run_removes_nothing(cache_dir: Path):
    before = names(cache_dir)
    result = cache_command("--cache-dir", str(cache_dir), "prune", "--all", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert names(cache_dir) == before and mnist_intact(cache_dir)
    assert "would remove CelebA cache recent (" in result.stdout
    assert "would remove CelebA cache ancient (" in result.stdout
    assert "would free " in result.stdout and "(5 entries)" in result.stdout
    assert "removed" not in result.stdout


def test_prune_without_a_selector_is_refused(cache_dir: Path):
    before = names(cache_dir)
    result = cache_command("--cache-dir", str(cache_dir), "prune")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ch12 cache: prune needs a selector: --older-than DAYS, --keep-last N or --all "
        "(add --dry-run to see what would be removed); it never removes everything by default "
        "(see --help)"
    )
    assert names(cache_dir) == before
    assert cache_folder.select_for_pruning(cache_folder.cache_entries(cache_dir)) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--older-than", "-1"], "'-1' is not valid: must be a number, 0 or more"),
        (["prune", "--keep-last", "-2"], "'-2' is not valid: must be a whole number, 0 or more"),
        (["prune", "--keep-last", "1.5"], "'1.5' is not valid: must be a whole number, 0 or more"),
        (["prune", "--older-than", "soon"], "'soon' is not valid: must be a number, 0 or more"),
        (["prune", "--all", "--keep-last", "1"], "--all removes every cache; give it alone"),
        (["list"], "is not valid: no such folder"),
    ],
    ids=["negative-days", "negative-keep", "fraction-keep", "not-a-number", "all-and-more", "dir"],
)
def test_bad_input_is_one_line_and_exit_status_2(cache_dir: Path, args: list[str], message: str):
    folder = cache_dir / "missing" if args == ["list"] else cache_dir
    before = names(cache_dir)
    result = cache_command("--cache-dir", str(folder), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert names(cache_dir) == before


def test_a_temporary_being_written_is_kept(tmp_path: Path):
    fresh = make_file(tmp_path / "celeba" / ".new.pt.abc123.tmp", 10, days_ago=0.01)
    stale = make_file(tmp_path / "celeba" / ".gone.json.def456.tmp", 10, days_ago=1)
    chosen = cache_folder.select_for_pruning(cache_folder.cache_entries(tmp_path), remove_all=True)
    assert [e.key for e in chosen] == [stale.name]
    cache_folder.prune(chosen)
    assert fresh.is_file() and not stale.exists()
    assert "may still be written" in cache_folder.list_caches(tmp_path)


def test_a_sidecar_without_its_cache_is_listed_and_pruned(tmp_path: Path):
    folder = make_cache(tmp_path, "orphan", 3)
    (folder / "orphan.pt").unlink()
    assert "description only, its orphan.pt is gone" in cache_folder.list_caches(tmp_path)
    cache_folder.prune(
        cache_folder.select_for_pruning(cache_folder.cache_entries(tmp_path), keep_last=0)
    )
    assert not list(folder.iterdir())


def test_default_folder_is_the_configs_paths_cache_dir(cache_dir: Path, tmp_path: Path):
    result = cache_command("list", env={"CH12_CACHE_DIR": str(cache_dir)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"the cache folder {cache_dir} holds ")
    env = {k: v for k, v in os.environ.items() if k != "CH12_CACHE_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "ch12_lightning.cache", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    home_cache = tmp_path / ".cache" / "ch12_lightning"
    assert (
        result.stdout.strip()
        == f"the cache folder {home_cache} does not exist yet (nothing cached)"
    )


def test_help_does_not_import_torch():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ch12_lightning.cache", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "prune" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "ch12_lightning.data.cache_folder" in imported
    assert "torch" not in imported and "hydra" not in imported
