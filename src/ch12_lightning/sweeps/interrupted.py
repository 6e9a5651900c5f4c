"""Trials that a killed search left RUNNING: found when the study is next opened, marked FAIL
with the reason ``interrupted``, and optionally retried.

A search killed with ``kill -9`` (or by the machine going down, or a scheduler's preemption)
never tells the study how its trial ended: without this, the trial stays RUNNING for ever in
the study and on the dashboard. Two signs tell that the process that ran a trial is gone:

- **Optuna's heartbeat**: while a trial runs, the search records a heartbeat for it every
  ``HEARTBEAT_INTERVAL`` seconds (``RDBStorage.record_heartbeat``, the mechanism that
  ``Study.optimize`` uses; an ask-and-tell loop such as this sweeper's must beat itself). A trial
  whose last heartbeat is older than ``GRACE_PERIOD`` is stale, as ``optuna.storages.
  fail_stale_trials`` judges it, whichever machine ran it.
- **Its process, on this machine**: each trial records the process that asked for it (host,
  process id and start time). A trial of a process of this host that no longer exists is
  interrupted at once, without waiting for the grace period: the same command run again right
  after ``kill -9`` finds it.

A second search running at the same time on the same study (another machine, or this one) keeps
its live trials: its process exists and its heartbeats are fresh.

The stale trials are found with the storage's own query (``_get_stale_trial_ids``, what
``fail_stale_trials`` calls) rather than ``fail_stale_trials`` itself, because that one marks
them FAIL first, after which a trial takes no user attribute: the reason is set while the
trial is still RUNNING, then its state.
"""

import logging
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 20  # seconds between a running trial's heartbeats
GRACE_PERIOD = 90  # seconds without one after which a trial of another machine is stale
OWNER = "ch12:owner"  # the system attribute naming the process that runs a trial
REASON = "interrupted"


def this_process() -> dict[str, Any]:
    """What names this process on this machine: host, process id and the process's start time
    (``/proc``, where there is one), so that a later process given the same id is not taken for
    this one."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # Field 22, counted after the command name (which may hold spaces) in parentheses.
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def gone(owner: Any) -> bool:
    """Whether ``owner`` (``this_process()`` of some process) is a process of this host that no
    longer runs. A process of another host, or one that cannot be told, is not gone: the
    heartbeat judges it."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        # This process asked for it in an earlier search that ended without telling it.
        return owner.get("start") == _start_time(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process has that id now
        pass
    start = owner.get("start")
    return start is not None and start != _start_time(pid)  # the id taken by a later process


def heartbeat_storage(url: str) -> Any:
    """An ``RDBStorage`` on the study's database with Optuna's heartbeat settings, used to beat
    and to find stale trials (the study keeps its own storage object)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD
        )


def fail_interrupted(study: Any, storage: Any, retries: int = 0) -> list[Any]:
    """Mark FAIL, with the user attribute ``fail_reason`` ``interrupted``, every RUNNING trial of
    ``study`` whose process is gone (stale heartbeat, or a process of this host that no longer
    runs); with ``retries`` > 0, queue each again with its parameters (Optuna's
    ``RetryHeartbeatStaleTrialCallback``), at most ``retries`` times per original trial.
    ``storage`` is ``heartbeat_storage``'s, or None for a study kept in memory. The trials
    marked, as they are stored now."""
    import optuna
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale: set[int] = set()
    if storage is not None:
        study_id = storage.get_study_id_from_name(study.study_name)
        stale = set(storage._get_stale_trial_ids(study_id))
    marked = []
    for trial in running:
        why = None
        if trial._trial_id in stale:
            why = f"no heartbeat for over {GRACE_PERIOD} s"
        elif gone(trial.system_attrs.get(OWNER)):
            owner = trial.system_attrs[OWNER]
            why = f"process {owner['pid']} on {owner['host']} is gone"
        if why is None:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", f"{REASON} ({why})")
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                marked.append(study._storage.get_trial(trial._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process told it, or marked it, first
    for trial in marked:
        log.warning("Trial %d marked FAIL: %s", trial.number, trial.user_attrs["fail_reason"])
        if retries > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)
                retry(study, trial)
    return marked


@contextmanager
def heartbeats(storage: Any, trial_ids: list[int]) -> Iterator[None]:
    """Record a heartbeat for each of ``trial_ids`` now and every ``HEARTBEAT_INTERVAL`` seconds
    until the block ends (``storage`` None: nothing to do)."""
    if storage is None or not trial_ids:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_INTERVAL):
            for trial_id in trial_ids:
                try:
                    storage.record_heartbeat(trial_id)
                except Exception as err:  # a busy database: the next beat tries again
                    log.debug("Heartbeat of trial id %d not recorded: %s", trial_id, err)

    for trial_id in trial_ids:  # the first beat before the trials run
        storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name="trial-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
