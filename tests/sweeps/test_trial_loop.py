"""The search's trial loop without training: config groups chosen per trial, trials whose config
cannot be composed, max_failure_rate, trials interrupted by a killed search, and a trial that the
pruner would stop at its last validation (a real, tiny Lightning fit)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from ch12_lightning.sweeps import interrupted, pruning, study_plots
from ch12_lightning.sweeps.pruning import TrialPruning
from ch12_lightning.sweeps.summary import write_summary
from hydra_plugins.ch12_optuna_sweeper.resumable_optuna_sweeper import ResumableOptunaSweeper
from hydra_plugins.ch12_optuna_sweeper.search_space import search_space

MODELS = {"mlp": {"hidden_sizes": [32, 16], "activation": "relu"}, "cnn": {"activation": "relu"}}


class Loader:
    """Hydra's config loader as the sweeper uses it: ``model`` is a group (mlp: hidden_sizes,
    cnn: none), an override of a key the model lacks or of ``model.activation=bad`` is refused
    as Hydra refuses it."""

    def __init__(self) -> None:
        self.composed: list[list[str]] = []

    def get_group_options(self, name: str) -> list[str]:
        return list(MODELS) if name == "model" else []

    def load_sweep_config(self, config: DictConfig, overrides: list[str]) -> DictConfig:
        self.composed.append(overrides)
        pairs = dict(o.split("=", 1) for o in overrides)
        model = dict(MODELS[pairs.get("model", "mlp")])
        for key, value in pairs.items():
            if key.startswith("model."):
                name = key.removeprefix("model.")
                if name not in model or value == "bad":
                    raise ConfigCompositionException(f"Could not override '{key}'.")
                model[name] = value
        return OmegaConf.create({"model": model})


class Launcher:
    """Runs each job as the basic launcher would, without training: a job folder with its
    record, and 0.9 for the CNN and 0.8 for the MLP as the metric."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir, self.launched = sweep_dir, []

    def launch(self, overrides: list[list[str]], initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for number, job in enumerate(overrides, start=initial_job_idx):
            self.launched.append((number, job))
            folder = self.sweep_dir / str(number)
            folder.mkdir()
            record = {"job": number, "overrides": job, "status": "completed", "error": ""}
            (folder / "job.json").write_text(json.dumps(record))
            write_summary(self.sweep_dir, "val/acc_best", "maximize")  # as the callback does
            hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder)}}})
            value = 0.9 if "model=cnn" in job else 0.8
            returns.append(JobReturn(hydra_cfg=hydra_cfg, status=JobStatus.COMPLETED,
                                     _return_value=value))  # fmt: skip
        return returns


@pytest.fixture(autouse=True)
def no_plots(monkeypatch) -> None:
    """The study's pictures (test_study_plots.py) cost a second per batch here."""
    monkeypatch.setattr(study_plots, "write_study_plots", lambda study, folder, metric=None: None)


def sweeper_for(tmp_path: Path, n_trials: int, max_failure_rate: float = 1.0) -> tuple:
    sweeper = ResumableOptunaSweeper(None, "maximize", None, "s", n_trials, 1, "none", None,
                                     max_failure_rate=max_failure_rate)  # fmt: skip
    sweeper.config = OmegaConf.create({"optimized_metric": "val/acc_best"})
    sweeper.pruner, sweeper.sweep_dir = "none", tmp_path
    sweeper.config_loader, sweeper.launcher = Loader(), Launcher(tmp_path)
    study = optuna.create_study(study_name="s", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    sweeper._study = lambda *args: study
    return sweeper, study


def test_a_search_over_a_group_gives_each_option_its_own_settings(tmp_path: Path, caplog):
    sweeper, study = sweeper_for(tmp_path, n_trials=8)
    params = {"model.hidden_sizes": "choice([32,16], [64,32])",
              "model.activation": "choice(relu, gelu)"}  # fmt: skip
    with caplog.at_level("INFO"):
        sweeper._search(search_space(params, ["model=choice(mlp,cnn)"]), None)
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
    models = {t.params["model"] for t in study.trials}
    assert models == {"mlp", "cnn"}
    for trial, (number, job) in zip(study.trials, sweeper.launcher.launched, strict=True):
        assert trial.number == number
        # The CNN has no hidden_sizes: its trials neither suggest nor set one.
        has_sizes = trial.params["model"] == "mlp"
        assert ("model.hidden_sizes" in trial.params) == has_sizes
        assert any(o.startswith("model.hidden_sizes=") for o in job) == has_sizes
        assert f"model={trial.params['model']}" in job
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Trial ")]
    assert len(lines) == 8 and "best so far: trial" in lines[-1]
    assert any(r.getMessage().startswith("Best trial ") for r in caplog.records)


def test_a_trial_whose_config_cannot_be_composed_fails_with_its_reason_and_the_search_goes_on(
    tmp_path: Path,
):
    sweeper, study = sweeper_for(tmp_path, n_trials=6)
    space = search_space({}, ["model.activation=choice(relu, bad)"])
    with pytest.raises(Exception, match=r"of 6 trials failed, the search went on"):
        sweeper._search(space, None)
    states = {t.number: t.state for t in study.trials}
    assert len(states) == 6
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed and all(t.params["model.activation"] == "bad" for t in failed)
    assert "Could not override 'model.activation'" in failed[0].user_attrs["fail_reason"]
    # Its job never started; it has its row in the summary, with the reason.
    launched = {number for number, _ in sweeper.launcher.launched}
    assert launched == {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    summary = (tmp_path / "summary.md").read_text()
    assert summary.count("Could not override") == len(failed)
    assert summary.count("\n") == 2 + 6


def test_max_failure_rate_stops_the_search_as_the_reference_does(tmp_path: Path):
    sweeper, study = sweeper_for(tmp_path, n_trials=6, max_failure_rate=0.0)
    space = search_space({}, ["model.activation=choice(bad)"])
    with pytest.raises(Exception, match=r"1 of the 1 trials of a batch failed, more than "
                                        r"hydra.sweeper.max_failure_rate=0.0"):  # fmt: skip
        sweeper._search(space, None)
    assert [t.state for t in study.trials] == [TrialState.FAIL]


def stored_study(tmp_path: Path) -> tuple[optuna.Study, Any]:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    return study, interrupted.heartbeat_storage(url)


def running_trial(study: optuna.Study, owner: dict[str, Any]) -> optuna.Trial:
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.1)})
    study._storage.set_trial_system_attr(trial._trial_id, interrupted.OWNER, owner)
    return trial


def test_a_trial_of_a_process_that_is_gone_is_failed_as_interrupted_and_retried(tmp_path: Path):
    study, beats = stored_study(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    here = socket.gethostname()
    dead = running_trial(study, {"host": here, "pid": int(done.stdout), "start": None})
    # A second search at the same time: its process lives, on this host or another one.
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as other:
        try:
            live = running_trial(study, {"host": here, "pid": other.pid,
                                         "start": interrupted._start_time(other.pid)})  # fmt: skip
            elsewhere = running_trial(study, {"host": "another-host", "pid": 1, "start": None})
            beats.record_heartbeat(elsewhere._trial_id)
            marked = interrupted.fail_interrupted(study, beats, retries=1)
        finally:
            other.kill()
    assert [t.number for t in marked] == [dead.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == TrialState.FAIL
    assert states[live.number] == states[elsewhere.number] == TrialState.RUNNING
    reason = study.trials[dead.number].user_attrs["fail_reason"]
    assert reason.startswith("interrupted (process ") and "is gone" in reason
    # Queued again with its parameters (retry_interrupted=1).
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert retry.params == study.trials[dead.number].params


def test_a_trial_without_heartbeat_past_the_grace_period_is_interrupted(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(interrupted, "GRACE_PERIOD", 1)
    study, beats = stored_study(tmp_path)
    stale = running_trial(study, {"host": "another-host", "pid": 1, "start": None})
    beats.record_heartbeat(stale._trial_id)
    time.sleep(2.1)
    fresh = running_trial(study, {"host": "another-host", "pid": 2, "start": None})
    beats.record_heartbeat(fresh._trial_id)
    study_again = optuna.load_study(study_name="s", storage=study._storage)
    assert [t.number for t in interrupted.fail_interrupted(study_again, beats)] == [stale.number]
    assert study.trials[fresh.number].state == TrialState.RUNNING
    assert "no heartbeat" in study.trials[stale.number].user_attrs["fail_reason"]


def test_this_process_is_not_gone_and_a_reused_process_id_is():
    me = interrupted.this_process()
    assert interrupted.gone(me)  # asked by this process, not in flight: an earlier search's
    parent = {**me, "pid": os.getppid(), "start": interrupted._start_time(os.getppid())}
    assert not interrupted.gone(parent)
    assert interrupted.gone({**parent, "start": "1"}) == (parent["start"] is not None)
    assert not interrupted.gone({**parent, "host": "another-host"})


class Constant(L.LightningModule):
    """Logs the same validation metric every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).sum()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/acc_best", 0.5)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(("max_epochs", "pruned"), [(2, False), (3, True)])
def test_a_trial_the_pruner_stops_at_its_last_validation_is_complete(
    tmp_path: Path, max_epochs: int, pruned: bool
):
    study = optuna.create_study(study_name="last", direction="maximize")
    pruning.IN_MEMORY["last"] = study._storage
    trial = study.ask()
    # Prunes from the second validation on: the last one when max_epochs=2.
    pruner = {"_target_": "optuna.pruners.ThresholdPruner", "lower": 2, "n_warmup_steps": 1}
    callback = TrialPruning(None, "last", trial.number, "val/acc_best", pruner)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)))
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[callback], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Constant(), data, data)
    stored = study.trials[0]
    assert ("pruned" in stored.user_attrs) == pruned
    assert trainer.current_epoch == (2 if pruned else max_epochs)
    assert sorted(stored.intermediate_values) == [0, 1]
