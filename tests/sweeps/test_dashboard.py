"""``./ch12 dashboard``: which study file a user means, the refusal of a study written by the
project's earlier Optuna (2.10) without touching the file, and optuna-dashboard serving a real
study on 127.0.0.1, live while trials are added."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from ch12_lightning.errors import InputError
from ch12_lightning.sweeps.study_storage import (
    OldStudySchemaError,
    refuse_old_schema,
    study_database,
)
from tests.helpers.runs import free_port

OPTUNA_2_10 = Path(__file__).parent / "data" / "optuna-2.10.db"  # 4 trials of mnist_optuna


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def old_study(folder: Path) -> Path:
    """A copy of the study file Optuna 2.10 wrote, as ``folder/optuna.db``."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(OPTUNA_2_10, folder / "optuna.db"))


def new_study(path: Path, name: str = "s") -> optuna.Study:
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(storage=f"sqlite:///{path}", study_name=name, direction="maximize")


def test_an_optuna_2_study_is_refused_with_the_upgrade_command_and_left_as_it_is(tmp_path: Path):
    database = old_study(tmp_path)
    before = sha256(database)
    with pytest.raises(OldStudySchemaError) as refused:
        refuse_old_schema(f"sqlite:///{database}")
    message = str(refused.value)
    assert f"{database} holds a study written by an older Optuna (2.10.1," in message
    assert f"optuna storage upgrade --storage sqlite:///{database}" in message
    assert "one-way" in message and "Optuna 2.x" in message
    assert f"cp {database} {tmp_path / 'optuna-optuna2.db'}" in message
    assert isinstance(refused.value, InputError)
    assert sha256(database) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]  # no journal left


def test_a_current_study_a_missing_file_and_other_urls_pass(tmp_path: Path):
    database = tmp_path / "optuna.db"
    study = new_study(database)
    study.tell(study.ask(), 1.0)
    refuse_old_schema(f"sqlite:///{database}")
    refuse_old_schema(f"sqlite:///{tmp_path / 'not-yet.db'}")
    refuse_old_schema("sqlite:///:memory:")
    refuse_old_schema("postgresql://user@localhost/optuna")


def test_a_file_that_is_not_sqlite_is_named_as_such(tmp_path: Path):
    text = tmp_path / "optuna.db"
    text.write_text("not a database\n" * 10)
    with pytest.raises(InputError, match=f"{text} is not an SQLite database"):
        refuse_old_schema(f"sqlite:///{text}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    with pytest.raises(InputError, match="is an SQLite database but not an Optuna study"):
        refuse_old_schema(f"sqlite:///{other}")


def test_a_study_of_a_newer_optuna_is_refused_as_such(tmp_path: Path):
    database = tmp_path / "optuna.db"
    new_study(database)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = 'v9.0.0.a'")
        connection.execute("UPDATE version_info SET library_version = '9.0.0'")
    connection.close()
    with pytest.raises(InputError, match=r"written by a newer Optuna \(9.0.0, schema v9.0.0.a\)"):
        refuse_old_schema(f"sqlite:///{database}")


def test_the_study_file_is_found_from_a_folder_or_named_directly(tmp_path: Path):
    database = old_study(tmp_path / "outputs/mnist_optuna/multiruns/mnist_optuna")
    assert study_database(database.parent) == database
    assert study_database(database) == database


def test_a_folder_without_a_study_lists_the_studies_below_it(tmp_path: Path):
    first = old_study(tmp_path / "outputs/mnist_optuna/multiruns/mnist_optuna")
    second = old_study(tmp_path / "outputs/iris_optuna/multiruns/lr_search")
    with pytest.raises(InputError) as refused:
        study_database(tmp_path / "outputs")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'outputs'} is not valid: this folder holds no")
    assert str(first.parent) in message and str(second.parent) in message
    with pytest.raises(InputError, match="no such file or folder"):
        study_database(tmp_path / "missing")


def test_the_default_is_the_newest_study_below_outputs(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="hparams_search=mnist_optuna"):
        study_database()
    older = old_study(tmp_path / "outputs/mnist_optuna/multiruns/first")
    newer = old_study(tmp_path / "outputs/mnist_optuna/multiruns/second")
    os.utime(older, (time.time() - 60, time.time() - 60))
    assert study_database() == newer


def test_the_command_refuses_an_optuna_2_study_with_the_message_alone(tmp_path: Path):
    database = old_study(tmp_path / "study")
    before = sha256(database)
    done = subprocess.run(
        [sys.executable, "-m", "ch12_lightning.sweeps.dashboard", str(database.parent)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"{database} holds a study written by an older Optuna")
    assert "optuna storage upgrade --storage sqlite:///" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sha256(database) == before


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                found.add(address)
    return found


def test_the_dashboard_serves_a_study_on_loopback_live(tmp_path: Path):
    database = tmp_path / "study" / "optuna.db"
    study = new_study(database)
    for value in (0.5, 0.75):
        study.tell(study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)}), value)
    reported = study.ask()
    for step, value in enumerate((0.2, 0.4, 0.6)):
        reported.report(value, step)
    study.tell(reported, 0.6)

    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "ch12_lightning.sweeps.dashboard", str(database.parent)]
        + ["--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line and str(database) in line, line
        assert "live" in line
        base = f"http://127.0.0.1:{port}/api"
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get(f"{base}/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.2)
        assert [(s["study_name"], s["directions"]) for s in studies] == [("s", ["maximize"])]
        study_id = studies[0]["study_id"]
        detail = get(f"{base}/studies/{study_id}")
        assert detail["name"] == "s" and len(detail["trials"]) == 3
        assert [t["values"] for t in detail["trials"]] == [[0.5], [0.75], [0.6]]
        assert [v["value"] for v in detail["trials"][2]["intermediate_values"]] == [0.2, 0.4, 0.6]
        assert detail["has_intermediate_values"] is True
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1 alone

        study.tell(study.ask(), 0.9)  # a trial ends while the dashboard runs
        deadline = time.monotonic() + 30  # it caches the trials for 2 s
        while len(get(f"{base}/studies/{study_id}")["trials"]) < 4:
            assert time.monotonic() < deadline, "the new trial did not appear in 30 s"
            time.sleep(0.5)
        assert get(f"{base}/studies/{study_id}")["trials"][3]["values"] == [0.9]
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        server.stdout.close()
        log.close()
