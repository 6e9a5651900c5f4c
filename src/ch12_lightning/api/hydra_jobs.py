"""Hydra's own way of running a command, from Python: the configs composed and the job run as
``@hydra.main`` composes and runs them, so a run started from a notebook writes the same run
folder (``.hydra/``, the log file, checkpoints, ``metrics.json``) as the command line's.

Hydra's compose API alone leaves ``${hydra:runtime.output_dir}`` unresolvable ("HydraConfig was
not set"); ``Hydra.run`` sets it, makes the folder and saves the config, exactly as the command
line does. Nothing here changes the working directory (``hydra.job.chdir`` is false) or keeps
Hydra's global state or its logging set-up after a call.
"""

import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from ch12_lightning import config_dir
from ch12_lightning.checks.override_keys import unknown_keys_explained
from ch12_lightning.errors import ConfigError, Explained
from ch12_lightning.run.build import LIGHTNING_LOGGERS
from ch12_lightning.run.folder_lock import released_at_end


def listed(overrides: Sequence[str] | None) -> list[str]:
    """The overrides as a list; a string (``"dataset=mnist optimizer=adam"``, as typed on the
    command line) would be read a character at a time."""
    if isinstance(overrides, str):
        reason = f"give a list, one override per item: {overrides.split()}"
        raise ConfigError(f"overrides={overrides!r} is not valid: {reason}")
    return list(overrides or [])


@contextmanager
def _initialized(job_name: str) -> Iterator[None]:
    """Hydra set up for one call; what Hydra finds wrong while composing (an unknown option, a
    misspelled key, an override it cannot parse) raised as the ``ConfigError`` it is, whose
    message a notebook shows alone, as the command line prints it."""
    GlobalHydra.instance().clear()  # a call interrupted by the user may have left it set
    try:
        with (
            unknown_keys_explained(),
            initialize_config_dir(str(config_dir()), version_base="1.3", job_name=job_name),
        ):
            yield
    except (ConfigCompositionException, OverrideParseException) as err:
        cause = f"\n{err.__cause__}" if isinstance(err.__cause__, OmegaConfBaseException) else ""
        raise ConfigError(f"{err}{cause}") from err


def composed(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config ``config_name`` with ``overrides``, as a job of the command line would see it:
    the run folder chosen (``hydra.run.dir``), every interpolation resolvable, no ``hydra``
    node."""
    with _initialized(config_name):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = OmegaConf.select(cfg, "hydra.run.dir")
        HydraConfig.instance().set_config(cfg)
        try:
            paths = OmegaConf.to_container(cfg.paths, resolve=True)
        finally:
            HydraConfig.instance().cfg = None
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths = paths
    return cfg


def run_job(config_name: str, overrides: Sequence[str], task: Callable[[DictConfig], Any]) -> Any:
    """Run ``task`` as ``@hydra.main`` would with ``overrides``: its folder made, its config
    saved, its log file written; return what ``task`` returns, or raise what it raised. A sweep
    is refused with the call that runs it."""
    _refuse_sweep_overrides(overrides)
    with _initialized(config_name), _logging_restored(), released_at_end(), _interrupts_kept():
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        try:
            refused: list[Explained] = []

            def explained(cfg: DictConfig) -> Any:
                # Hydra prints "Error executing job with overrides: [...]" before it raises a
                # job's error; a bad value's own message says more, and alone.
                try:
                    return task(cfg)
                except Explained as err:
                    refused.append(err)

            result = hydra.run(config_name, explained, list(overrides)).return_value
            if refused:
                raise refused[0]
            return result
        except AssertionError:
            # Hydra.run asserts hydra.mode=RUN: a config that makes itself a sweep
            # (hparams_search sets hydra.mode=MULTIRUN) would end in a bare AssertionError.
            if hydra.get_mode(config_name, list(overrides)) == RunMode.MULTIRUN:
                mode = "hydra.mode=MULTIRUN, as hparams_search sets it"
                raise ConfigError(f"This config is a sweep ({mode}){ONE_RUN}") from None
            raise
        finally:
            HydraConfig.instance().cfg = None


SWEEP_FLAGS = ("-m", "--multirun")
ONE_RUN = (
    ", and api.train trains one run: run sweeps with api.sweep(overrides), as ./ch12 train -m "
    "runs them."
)


def _refuse_sweep_overrides(overrides: Sequence[str]) -> None:
    """``-m`` or a swept value (``seed=1,2``, an Optuna search space) asks for a sweep, which
    Hydra would refuse with a lexer error or advice for the command line."""
    flags = [override for override in overrides if override in SWEEP_FLAGS]
    if flags:
        raise ConfigError(f"{flags[0]} asks for a sweep{ONE_RUN}")
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException:
        return  # Hydra says what is wrong with it
    swept = [override.input_line for override in parsed if override.is_sweep_override()]
    if swept:
        raise ConfigError(f"{swept[0]} is a sweep (one job per value){ONE_RUN}")


def composed_sweep(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config of the sweep ``overrides`` describe as ``-m`` composes it, with its ``hydra``
    node: the sweep folder, sweeper and launcher settings."""
    with _initialized(config_name):
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        return hydra.compose_config(
            config_name, list(overrides), run_mode=RunMode.MULTIRUN, with_log_configuration=False
        )


def run_multirun(
    config_name: str, overrides: Sequence[str], task: Callable[[DictConfig], Any]
) -> None:
    """Run the sweep ``overrides`` describe as ``@hydra.main`` runs it with ``-m``: the
    config's sweeper and launcher, each job's folder, config and log file, the config's
    callbacks (the sweep's summaries). Raises what the sweep raised: a failed job's error once
    the others have run, as the command line then exits with status 1."""
    with _initialized(config_name), _logging_restored(), released_at_end(), _interrupts_kept():
        hydra = GlobalHydra.instance().hydra
        assert hydra is not None
        try:
            hydra.multirun(config_name, task, list(overrides))
        finally:
            HydraConfig.instance().cfg = None


def path_override(key: str, path: Path) -> str:
    """``key='<absolute path>'``: quoted, so that a comma or an equals sign in the path is
    part of it rather than a sweep or a syntax error."""
    quoted = str(path.resolve()).replace("'", "\\'")
    return f"{key}='{quoted}'"


@contextmanager
def _interrupts_kept() -> Iterator[None]:
    """SIGINT's handler as it was: Lightning ignores SIGINT once it has caught one
    (``signal.SIG_IGN``), which in a notebook would leave the kernel deaf to every later
    interrupt."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


@contextmanager
def _logging_restored() -> Iterator[None]:
    """The root logger as it was: Hydra points it at the job's log file and console, and a
    second job, or the caller's own logging, must not inherit them (nor the open file); the
    Lightning loggers a job lets propagate (``run.build._log_once``) get their own back.

    Meanwhile warnings are log records (``logging.captureWarnings``), so they reach the log
    file as well as the cell, and each is shown once: Lightning resets the warnings module's
    once-per-place memory whenever it changes a filter, and would repeat one at every stage."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    lightning = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
                 for name in LIGHTNING_LOGGERS}  # fmt: skip
    warnings_logger, once = logging.getLogger("py.warnings"), _Once()
    warnings_logger.addFilter(once)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        warnings_logger.removeFilter(once)
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (own, propagate) in lightning.items():
            logging.getLogger(name).handlers[:] = own
            logging.getLogger(name).propagate = propagate


class _Once(logging.Filter):
    """Lets each message through the first time only."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        new = message not in self.seen
        self.seen.add(message)
        return new
