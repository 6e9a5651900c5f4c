"""Entry point: ``python -m ch12_lightning.sweeps.dashboard [<study folder or .db>] [--port N]``
(``./ch12 dashboard``): optuna-dashboard on a search's study, live while the search runs.

Without an argument it shows the newest study below ``outputs/``. A study written by the
project's earlier Optuna (2.x) is refused before optuna-dashboard opens it, with the command
that upgrades it: optuna-dashboard would offer to migrate it in place, one way, without a copy.
Bound to 127.0.0.1 alone: the dashboard can edit and delete studies, and has no login.
"""

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from ch12_lightning.errors import Explained, InputError
from ch12_lightning.sweeps.study_storage import refuse_old_schema, study_database

HOST = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ch12 dashboard",
        description="Show a search's Optuna study in optuna-dashboard, on this machine only.",
    )
    parser.add_argument(
        "study",
        nargs="?",
        type=Path,
        help="a study folder (outputs/<task>/multiruns/<study name>/) or its optuna.db "
        "(default: the most recently modified one below outputs/)",
    )
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    return parser


def serve(database: Path, port: int) -> None:
    """Serve the study file with optuna-dashboard on ``HOST:port`` until interrupted."""
    try:
        import optuna_dashboard
    except ImportError as err:
        raise InputError(
            "optuna-dashboard is not installed in this environment: ./ch12 setup installs it "
            "(the project's extra 'dashboard'), or: pip install optuna-dashboard"
        ) from err
    storage = f"sqlite:///{database}"
    refuse_old_schema(storage)
    print(
        f"Study {database} on http://{HOST}:{port}/ (the view updates live while a search "
        "runs; Ctrl-C stops it)",
        flush=True,
    )
    try:
        optuna_dashboard.run_server(storage, host=HOST, port=port)
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        raise InputError(f"--port {port} is not valid: it is in use; give another") from err


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not valid: must be 1 to 65535")
    try:
        serve(study_database(args.study), args.port)
    except Explained as err:
        parser.exit(2, f"{err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
