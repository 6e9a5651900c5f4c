"""DDP in a notebook: Lightning runs it only in processes forked from the kernel
(``accelerator=ddp_cpu_notebook``, ``ddp_notebook``); the project's other DDP options are
refused there before anything is built, in one line saying what runs instead."""

import json
import re
from pathlib import Path

import pytest
from lightning.pytorch.trainer.connectors import accelerator_connector

from ch12_lightning import api
from ch12_lightning.errors import ConfigError
from ch12_lightning.run.build import build_trainer
from tests.helpers.kernels import kernel
from tests.helpers.runs import compose_config

REFUSED = (
    "trainer.strategy.start_method={start} is not valid: in a notebook (or any interactive "
    "Python) Lightning runs DDP only in processes forked from it (its ddp_notebook); use "
    "accelerator={instead} here, or run the same overrides with ./ch12 train in a terminal"
)
IRIS = ["experiment=iris_book", "trainer.max_epochs=2"]


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Lightning sees in a Jupyter kernel (``sys.ps1`` is set there)."""
    monkeypatch.setattr(accelerator_connector, "_IS_INTERACTIVE", True)


@pytest.mark.parametrize(
    ("accelerator", "start"), [("ddp_cpu", "popen"), ("ddp_cpu_spawn", "spawn")]
)
def test_ddp_that_lightning_refuses_in_a_notebook_is_one_line(
    accelerator: str, start: str, interactive: None, path_overrides: list[str]
):
    with pytest.raises(ConfigError) as refused:
        api.compose([f"accelerator={accelerator}"])
    assert str(refused.value) == REFUSED.format(start=start, instead="ddp_cpu_notebook")
    # Lightning itself refuses the same Trainer there, and takes the forked one.
    with pytest.raises(ConfigError, match="not compatible with an interactive environment"):
        build_trainer(compose_config([*path_overrides, f"accelerator={accelerator}"]))
    forked = build_trainer(compose_config([*path_overrides, "accelerator=ddp_cpu_notebook"]))
    assert forked.strategy.launcher.is_interactive_compatible and forked.num_devices == 2


def test_outside_a_notebook_every_ddp_option_stays_as_it_is():
    for accelerator in ("ddp_cpu", "ddp_cpu_spawn", "ddp_cpu_notebook"):
        api.compose([f"accelerator={accelerator}"])


@pytest.mark.slow
def test_ddp_in_a_kernel_runs_forked_and_the_others_say_so(tmp_path: Path):
    with kernel(tmp_path) as k:
        assert k.run("from ch12_lightning import api").error is None
        refused = k.run(f"api.train({[*IRIS, 'accelerator=ddp_cpu']})")
        assert refused.error and refused.error["ename"] == "ConfigError", refused.outputs
        assert refused.lines()[-1] == "ConfigError: " + REFUSED.format(
            start="popen", instead="ddp_cpu_notebook"
        )
        trained = k.run(
            f"run = api.train({[*IRIS, 'accelerator=ddp_cpu_notebook']}, output_dir='ddp')\n"
            "import json; print(json.dumps(run.metrics))"
        )
        assert trained.error is None, trained.outputs
    metrics = json.loads(trained.text.strip().splitlines()[-1])
    assert (metrics["val/samples"], metrics["test/samples"]) == (50, 50)  # each once, 2 ranks
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert re.search(r"GLOBAL_RANK: 1, MEMBER: 2/2", log), log[-3000:]
