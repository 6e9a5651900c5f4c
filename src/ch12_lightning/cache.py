"""Entry point: ``python -m ch12_lightning.cache list|prune [...]`` (``./ch12 cache ...``).

Shows and removes the picture caches (CelebA's and image folders'), one per combination of
settings, which nothing else removes. Thin: the work is in ``data/cache_folder.py``. No torch,
and Hydra only when the default folder is needed, so ``--help`` answers at once.
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ch12_lightning.data import cache_folder


class _Parser(argparse.ArgumentParser):
    """Bad input ends the command with one line (and exit status 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _non_negative(kind: type) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind``, 0 or more (a negative one would select nothing
    or everything, silently)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value >= 0:
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not valid: must be {noun}, 0 or more")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ch12 cache",
        description="List or remove the picture caches of CelebA and image folders (one file per "
        "combination of settings).",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="the cache folder (default: paths.cache_dir of the config: $CH12_CACHE_DIR, "
        "else $HOME/.cache/ch12_lightning)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("list", help="every picture cache, and the size of the other folders")
    prune = commands.add_parser(
        "prune",
        help="remove picture caches (and leftover temporary files); MNIST is left alone",
        description="Remove picture caches chosen by last use. Give --older-than, --keep-last "
        "(both: a cache must fit both) or --all; --dry-run shows what would go.",
    )
    prune.add_argument(
        "--older-than",
        type=_non_negative(float),
        metavar="DAYS",
        help="remove caches not used for DAYS days",
    )
    prune.add_argument(
        "--keep-last",
        type=_non_negative(int),
        metavar="N",
        help="keep the N most recently used caches",
    )
    prune.add_argument("--all", action="store_true", help="remove every picture cache")
    prune.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    return parser


def default_cache_dir() -> Path:
    """``paths.cache_dir`` as a training run resolves it, from the project's own config."""
    from hydra import compose, initialize_config_dir

    from ch12_lightning import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train")
    return Path(cfg.paths.cache_dir).expanduser()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "prune":
        if args.all and (args.older_than is not None or args.keep_last is not None):
            parser.error("prune: --all removes every cache; give it alone")
        if not args.all and args.older_than is None and args.keep_last is None:
            parser.error(
                "prune needs a selector: --older-than DAYS, --keep-last N or --all "
                "(add --dry-run to see what would be removed); it never removes everything "
                "by default"
            )
    if args.cache_dir is not None:
        cache_dir = args.cache_dir.expanduser()
        if not cache_dir.is_dir():
            problem = "is not a folder" if cache_dir.exists() else "no such folder"
            parser.error(f"--cache-dir {args.cache_dir} is not valid: {problem}")
    else:
        cache_dir = default_cache_dir()

    if args.command == "list":
        print(cache_folder.list_caches(cache_dir))
        return 0
    entries = cache_folder.cache_entries(cache_dir)
    chosen = cache_folder.select_for_pruning(
        entries, older_than_days=args.older_than, keep_last=args.keep_last, remove_all=args.all
    )
    lines = cache_folder.prune(chosen, dry_run=args.dry_run)
    print("\n".join(lines))
    kept = [e for e in entries if not e.is_temporary and e not in chosen]
    if kept:
        size = cache_folder.human_size(sum(e.size for e in kept))
        print(f"kept {len(kept)} picture cache{'s' * (len(kept) != 1)} ({size})")
    return 1 if any(line.startswith("could not remove") for line in lines) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head: not an error of ours
        sys.stderr.close()
        sys.exit(0)
