"""The SQLite file of a search's Optuna study (``<study folder>/optuna.db``): which one a user
means, and whether this project's Optuna can open it.

Studies written by Optuna 2.x (the project's earlier versions) have an older schema. Opening
one through Optuna's storage machinery does not say so clearly, and optuna-dashboard offers to
migrate it in place, one way: Optuna 2.x cannot open it afterwards. So the schema is read here
through a read-only connection first (Optuna's own storage would open the file for writing),
and an old one is refused with the command that upgrades it and how to keep a copy first.
"""

import functools
import shlex
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from ch12_lightning.errors import InputError

STUDY_FILE = "optuna.db"
STUDIES = f"outputs/*/multiruns/*/{STUDY_FILE}"  # below the project folder
START = "./ch12 train hparams_search=mnist_optuna"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file


class OldStudySchemaError(InputError):
    """A study file written by an older Optuna than the project's, which must upgrade it."""


def refuse_old_schema(storage: str) -> None:
    """Raise ``OldStudySchemaError`` where ``storage`` is a SQLite URL whose file holds a study
    with an older schema than the installed Optuna's, and ``InputError`` where the file is not
    an SQLite database, not an Optuna study, or written by a newer Optuna. The file is opened
    read-only and left as it is. Other URLs, and files that do not exist yet, pass."""
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database).absolute()
    if not path.exists():
        return
    revision, library = _stored_schema(path)
    if revision is None and library is None:
        return  # no tables yet: Optuna creates them
    import optuna

    head, known = _schema_versions()
    if revision == head or (revision is None and library == optuna.__version__):
        return  # the current schema, or a study being created by this Optuna right now
    if revision is not None and revision not in known:
        raise InputError(
            f"{path} holds a study written by a newer Optuna ({library}, schema {revision}) "
            f"than this project's {optuna.__version__}, which cannot open it: open it with the "
            "Optuna that wrote it, or update the project's optuna (pyproject.toml)."
        )
    # Who can still open the study, and the name of the copy for it, by the version that wrote it.
    major = library.split(".")[0] if library else ""
    older = f"Optuna {major}.x" if major else "the Optuna that wrote it"
    earlier = ", and so this project's earlier versions," if major == "2" else ""
    copy = path.with_name(f"{path.stem}-optuna{major or '-old'}.db")
    optuna_command = Path(sys.executable).with_name("optuna")  # this environment's Optuna
    command = str(optuna_command) if optuna_command.is_file() else "optuna"
    raise OldStudySchemaError(
        f"{path} holds a study written by an older Optuna ({library or 'version unknown'}, "
        f"schema {revision or 'from before alembic'}), which this project's Optuna "
        f"{optuna.__version__} cannot open. Upgrading it is one-way ({older}{earlier} cannot "
        f"open the study afterwards), so keep a copy first: cp {shlex.quote(str(path))} "
        f"{shlex.quote(str(copy))} ; then upgrade it: {command} storage upgrade --storage "
        f"{shlex.quote(f'sqlite:///{path}')}"
    )


def study_database(where: Path | None = None) -> Path:
    """The study file that ``where`` names: a study folder holding ``optuna.db``, or a ``.db``
    file. Without ``where``, the most recently modified ``outputs/*/multiruns/*/optuna.db``
    below the current folder."""
    if where is None:
        found = _newest_first(Path().glob(STUDIES))
        if not found:
            raise InputError(
                f"No study found: there is no {STUDIES} below {Path.cwd()}. Start a search "
                f"with {START}, or name a study folder or its {STUDY_FILE}."
            )
        return found[0].absolute()
    if where.is_file() and where.suffix == ".db":
        return where.absolute()
    if (where / STUDY_FILE).is_file():
        return (where / STUDY_FILE).absolute()
    if not where.exists():
        problem = "no such file or folder"
    elif where.is_dir():
        problem = f"this folder holds no {STUDY_FILE}"
    else:
        problem = "not a .db file"
    message = (
        f"{where} is not valid: {problem}. Name a study folder (one holding {STUDY_FILE}, "
        f"outputs/<task>/multiruns/<study name>/) or its {STUDY_FILE}"
    )
    if where.is_dir():
        # Study folders are up to 4 levels below (from the project folder: outputs/*/multiruns/*).
        below = [p for depth in range(1, 5) for p in where.glob("*/" * depth + STUDY_FILE)]
        shown = [str(p.parent) for p in _newest_first(below)]
        if shown:
            more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
            message += f"; studies found below it, newest first: {', '.join(shown[:5])}{more}"
    raise InputError(message + ".")


def _stored_schema(path: Path) -> tuple[str | None, str | None]:
    """The alembic revision and the Optuna version recorded in the file (``None`` where it has
    none), read through a read-only connection."""
    try:
        with path.open("rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as err:  # a folder, or a file we may not read
        raise InputError(f"{path} could not be read as an SQLite database: {err}.") from err
    if header not in (SQLITE_HEADER, b""):  # an empty file is an empty database to SQLite
        raise InputError(
            f"{path} is not an SQLite database, so not an Optuna study: name a search's "
            f"{STUDY_FILE} (outputs/<task>/multiruns/<study name>/) or a study folder."
        )
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
            if not tables:
                return None, None
            if "version_info" not in tables:
                raise InputError(
                    f"{path} is an SQLite database but not an Optuna study (it has no "
                    f"version_info table): name a search's {STUDY_FILE} "
                    "(outputs/<task>/multiruns/<study name>/) or a study folder."
                )
            library = connection.execute("SELECT library_version FROM version_info").fetchone()
            revision = None
            if "alembic_version" in tables:
                revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as err:
        raise InputError(f"{path} could not be read as an SQLite database: {err}.") from err
    return (revision[0] if revision else None), (library[0] if library else None)


@functools.cache
def _schema_versions() -> tuple[str, list[str]]:
    """The schema revision the installed Optuna writes, and every one it can upgrade from, as
    its RDBStorage reports them (asked of a study in memory)."""
    from optuna.storages import RDBStorage

    storage = RDBStorage("sqlite:///:memory:")
    return storage.get_head_version(), storage.get_all_versions()


def _newest_first(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: p.stat().st_mtime, reverse=True)
