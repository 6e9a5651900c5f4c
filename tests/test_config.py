"""Every option of every config group composes, and the command line lists and prints them."""

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ch12_lightning import config_dir
from tests.helpers.runs import compose_config, train

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in sorted(config_dir().iterdir())
    if group.is_dir()
}
OPTIONS = [(group, option) for group, options in GROUPS.items() for option in options]


def test_every_group_of_the_issue_exists():
    expected = {"dataset", "model", "optimizer", "accelerator", "trainer", "logger", "callbacks"}
    assert expected | {"paths"} <= set(GROUPS)
    assert {"sgd", "adam", "adamw"} <= set(GROUPS["optimizer"])
    assert {"cpu", "gpu", "ddp", "ddp_cpu", "auto"} <= set(GROUPS["accelerator"])


@pytest.mark.parametrize(("group", "option"), OPTIONS)
def test_option_composes(group: str, option: str, path_overrides: list[str]):
    cfg = compose_config([*path_overrides, f"{group}={option}"])
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in ("seed", "task_name", "ckpt_path", "train", "test"):
        assert key in container
    assert container["model"]["optimizer"] == container["optimizer"]
    assert container["trainer"]["accelerator"] in {"cpu", "gpu", "auto"}


def test_accelerators_set_the_trainer(quick_overrides: list[str]):
    ddp_cpu = compose_config([*quick_overrides, "accelerator=ddp_cpu"]).trainer
    assert (ddp_cpu.accelerator, ddp_cpu.devices) == ("cpu", 2)
    assert ddp_cpu.strategy.process_group_backend == "gloo"
    ddp = compose_config([*quick_overrides, "accelerator=ddp"]).trainer
    assert (ddp.accelerator, ddp.devices, ddp.strategy.process_group_backend) == ("gpu", -1, "nccl")
    gpu = compose_config([*quick_overrides, "accelerator=gpu"]).trainer
    assert (gpu.accelerator, gpu.devices) == ("gpu", 1)


@pytest.mark.parametrize(
    ("experiment", "sizes"), [("mnist_book", [32, 16]), ("celeba_practice", [256, 64])]
)
def test_an_experiment_sets_its_mlp_and_leaves_another_network_alone(
    experiment: str, sizes: list[int]
):
    mlp = compose_config([f"experiment={experiment}"]).model
    assert (mlp.net, mlp.hidden_sizes) == ("ch12_lightning.models.nets.mlp.MLP", sizes)
    assert compose_config([f"experiment={experiment}", "model.hidden_sizes=[8]"]).model[
        "hidden_sizes"
    ] == [8]  # the command line still has the last word
    cnn = compose_config([f"experiment={experiment}", "model=cnn"]).model
    assert cnn.net == "ch12_lightning.models.nets.cnn.CNN" and "hidden_sizes" not in cnn


def test_optimizer_options_carry_their_settings():
    sgd = compose_config(["optimizer=sgd"]).optimizer
    assert {"lr", "momentum", "nesterov", "weight_decay"} <= set(sgd)
    adam = compose_config(["optimizer=adam"]).optimizer
    assert {"lr", "betas", "weight_decay"} <= set(adam)


def test_the_defaults_and_the_book_recipe_are_the_books():
    """784-32-16-10 ReLU, Adam lr 1e-3, batch 64, 20 epochs, MNIST's 60,000 training digits
    split 55,000 / 5,000 (the slow tier trains it on the real MNIST: test acc >= 0.96)."""
    default = compose_config([])
    assert (default.optimizer.name, default.optimizer.lr) == ("adam", 0.001)
    assert (default.dataset.val_size, default.dataset.batch_size, default.seed) == (5000, 64, 1)
    book = compose_config(["experiment=mnist_book"])
    assert (book.optimizer.name, book.optimizer.lr, book.dataset.batch_size) == ("adam", 0.001, 64)
    assert (book.dataset.val_size, book.trainer.max_epochs, book.seed) == (5000, 20, 1)
    assert (list(book.model.hidden_sizes), book.model.activation) == ([32, 16], "relu")


def _cli(*args: str, cwd: Path) -> str:
    result = train(*args, cwd=cwd, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_lists_every_group_and_option(tmp_path: Path):
    out = _cli("--help", cwd=tmp_path)
    for group, options in GROUPS.items():
        assert f"{group}: {', '.join(options)}" in out


def test_cfg_job_prints_the_composed_config(tmp_path: Path):
    cfg = OmegaConf.create(
        _cli("--cfg", "job", "optimizer=sgd", "model.dropout=0.25", cwd=tmp_path)
    )
    assert cfg.optimizer.name == "sgd"
    assert cfg.model.dropout == 0.25
    assert cfg.dataset._target_.endswith("MNISTDataModule")


def test_composing_does_not_import_torch(tmp_path: Path):
    code = (
        "import sys; from ch12_lightning.train import main; sys.argv = ['train', '--cfg', 'job'];"
        "\ntry:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip().endswith("False"), result.stdout + result.stderr
