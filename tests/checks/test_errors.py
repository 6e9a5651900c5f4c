"""Bad input gets one clear message before anything is trained (docs/errors.md lists them all)."""

import gzip
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ch12_lightning import api
from ch12_lightning.checks.checkpoint_file import check_checkpoint
from ch12_lightning.checks.config import validate
from ch12_lightning.data.celeba_files import CelebAFormatError
from ch12_lightning.data.mnist import MNISTDataModule, MNISTFormatError
from ch12_lightning.data.picture_cache import CorruptImageError
from ch12_lightning.errors import ConfigError, InputError, MissingDataError
from ch12_lightning.run.pipeline import SweepStrategyError, run
from tests.helpers.celeba_tree import make_celeba
from tests.helpers.mnist_files import write_idx
from tests.helpers.runs import compose_config, quick, train, with_output_dir

ACTIVATIONS = "must be one of elu, gelu, leaky_relu, relu, sigmoid, silu, tanh"
SIZES = "must be a non-empty list of positive integers, e.g. [32,16]"


def _refused(overrides: list[str], tmp_path: Path) -> str:
    """Run the pipeline, expect a ConfigError, check nothing was prepared or written; message."""
    with pytest.raises(ConfigError) as err:
        run(compose_config(overrides))
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
    return str(err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=0", "optimizer.lr=0 is not valid: must be a positive number"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is not valid: must be a positive number"),
        ("dataset.batch_size=0", "dataset.batch_size=0 is not valid: must be a positive integer"),
        (
            "dataset.eval_batch_size=0",
            "dataset.eval_batch_size=0 is not valid: must be a positive integer or null",
        ),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 is not valid: must be a positive integer"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 is not valid: must be a positive integer"),
        (
            "+optimizer.lrr=0.1",
            "optimizer.lrr=0.1 is not valid: optimizer=adam (torch.optim.adam.Adam) has no "
            "setting lrr; did you mean lr? It takes: amsgrad, betas,",
        ),
        (
            "+trainer.gradient_clip_vall=0.5",
            "trainer.gradient_clip_vall=0.5 is not valid: lightning.pytorch.trainer.trainer."
            "Trainer has no setting gradient_clip_vall; did you mean gradient_clip_val",
        ),
        ("+model.hidden_size=[8]", "model.hidden_size=[8] is not valid: ch12_lightning.models."),
        ("+dataset.batches_per_call=16", "dataset.batches_per_call=16 is not valid: "),
        ("+callbacks.lr_monitor.interval=step", "callbacks.lr_monitor.interval=step is not valid"),
        ("scheduler=cosine", None),  # valid: the control for the next ones
        ("optimizer.fused=maybe", "optimizer.fused=maybe is not valid: must be auto, true or"),
        ("model.compile=1", "model.compile=1 is not valid: must be true or false"),
        ("scheduler.name=linear", "scheduler.name=linear is not valid: must be one of cosine, "),
        ("+scheduler.T_mx=4", "scheduler.T_mx=4 is not valid: scheduler=none"),
        ("+trainer.barebones=true", "Lightning refused these trainer flags: `Trainer(barebones"),
        ("+trainer.precision=13", "Lightning refused these trainer flags: Precision 13"),
        ("model.hidden_sizes=[]", f"model.hidden_sizes=[] is not valid: {SIZES}"),
        ("model.hidden_sizes=[32,a]", f"model.hidden_sizes=[32,a] is not valid: {SIZES}"),
        ("model.hidden_sizes=[32.5]", f"model.hidden_sizes=[32.5] is not valid: {SIZES}"),
        ("model.hidden_sizes=[0]", f"model.hidden_sizes=[0] is not valid: {SIZES}"),
        ("model.dropout=1.5", "model.dropout=1.5 is not valid: must be in [0, 1)"),
        ("model.dropout=-0.1", "model.dropout=-0.1 is not valid: must be in [0, 1)"),
        ("model.activation=swish", f"model.activation=swish is not valid: {ACTIVATIONS}"),
        ("model.loss=hinge", "model.loss=hinge is not valid: must be one of bce_with_logits, "),
        (
            "optimizer.name=rmsprop",
            "optimizer.name=rmsprop is not valid: must be one of adam, adamw, sgd",
        ),
        ("trainer.devices=10000", "trainer.devices=10000 is not valid: must be auto or 1 to "),
        ("model=cnn", None),  # valid: the control for the network settings
        ("model.net=nowhere.Net", "model.net=nowhere.Net is not valid: no network can be imp"),
        (
            "model.net=ch12_lightning.models.nets.mlp",
            "model.net=ch12_lightning.models.nets.mlp is not valid: no network can be imported",
        ),
    ],
)
def test_bad_value_is_refused_before_anything_runs(
    override: str, message: str | None, quick_overrides: list[str], tmp_path: Path
):
    if message is None:
        validate(compose_config([*quick_overrides, override]))
    else:
        assert message in _refused([*quick_overrides, override], tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["scheduler=cosine", "trainer.max_epochs=-1", "+trainer.max_steps=100"],
            "scheduler.T_max=-1 is not valid: must be a positive integer",
        ),
        (
            ["callbacks=early_stopping", "+trainer.limit_val_batches=0"],
            "trainer.limit_val_batches=0 is not valid: callbacks.early_stopping "
            "(monitor=val/acc) need a validation metric, and no validation runs",
        ),
        (
            ["scheduler=plateau", "+trainer.limit_val_batches=0"],
            "trainer.limit_val_batches=0 is not valid: scheduler=plateau (monitor=val/loss)",
        ),
    ],
)
def test_flags_that_cannot_work_together(
    overrides: list[str], message: str, quick_overrides: list[str], tmp_path: Path
):
    assert message in _refused([*quick_overrides, *overrides], tmp_path)


def test_a_run_bounded_by_steps_alone_is_valid(quick_overrides: list[str]):
    validate(compose_config([*quick_overrides, "trainer.max_epochs=-1", "+trainer.max_steps=5"]))
    validate(compose_config([*quick_overrides, "trainer.max_epochs=-1", "+trainer.max_time=1"]))


def test_lightning_refusal_found_at_fit_is_a_message(quick_overrides: list[str], tmp_path: Path):
    # 1% of 16 batches is none: Lightning can tell only once it knows the data.
    with pytest.raises(ConfigError) as err:
        run(compose_config([*quick_overrides, "+trainer.limit_train_batches=0.01"]))
    message = str(err.value)
    assert message.startswith("Lightning refused these trainer flags: You requested to check 0.01")
    assert "Try at least `limit_train_batches=0.0625`" in message


CNN_CHANNELS = "must be a non-empty list of positive integers, e.g. [16,32]"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.channels=[0]"], f"model.channels=[0] is not valid: {CNN_CHANNELS}"),
        (["model.channels=[]"], f"model.channels=[] is not valid: {CNN_CHANNELS}"),
        (["model.kernel_size=0"], "model.kernel_size=0 is not valid: must be a positive integer"),
        (["model.activation=swish"], f"model.activation=swish is not valid: {ACTIVATIONS}"),
        (["model.batch_norm=maybe"], "model.batch_norm=maybe is not valid: must be true or false"),
        (["model.dropout=1"], "model.dropout=1 is not valid: must be in [0, 1)"),
        (
            ["+model.hidden_sizes=[8]"],
            "model.hidden_sizes=[8] is not valid: ch12_lightning.models"
            ".classifier.Classifier with its network ch12_lightning.models.nets.cnn.CNN has no "
            "setting hidden_sizes",
        ),  # fmt: skip
        (
            ["model.kernel_size=29"],
            "model.kernel_size=29 is not valid: a kernel must fit in the 28x28 pictures; use at "
            "most 28",
        ),
        (
            ["model.channels=[8,8,8,8,8]"],
            "model.channels=[8,8,8,8,8] is not valid: block 5 sees 1x1 features (the 28x28 "
            "pictures halved 4 times), fewer than the kernel's 3x3; use at most 4 blocks",
        ),
        (
            ["dataset=iris"],
            "model.net=ch12_lightning.models.nets.cnn.CNN is not valid: the data set gives inputs "
            "of shape [4], not pictures (channels, height, width), and a convolutional network "
            "needs pictures; use model=mlp",
        ),
        (
            ["dataset=toy_regression"],
            "model._target_=ch12_lightning.models.classifier.Classifier is not valid: "
            "ToyRegressionDataModule is a regression data set; use model=linear_regression",
        ),
    ],
)
def test_bad_cnn_settings_are_refused_before_any_data_is_read(
    overrides: list[str],
    message: str,
    quick_overrides: list[str],
    path_overrides: list[str],
    tmp_path: Path,
):
    other_data = overrides[0].startswith("dataset=")
    base = path_overrides if other_data else quick_overrides
    assert message in _refused([*base, "model=cnn", *overrides], tmp_path)


def test_one_logit_cannot_tell_ten_classes_apart(quick_overrides: list[str], tmp_path: Path):
    message = _refused([*quick_overrides, "model.loss=bce_with_logits"], tmp_path)
    assert message == (
        "model.loss=bce_with_logits is not valid: a single logit cannot tell 10 classes apart; "
        "use cross_entropy"
    )


def test_every_bad_value_is_listed_in_one_message(quick_overrides: list[str], tmp_path: Path):
    message = _refused([*quick_overrides, "optimizer.lr=0", "model.dropout=1"], tmp_path)
    assert message.splitlines() == [
        "optimizer.lr=0 is not valid: must be a positive number",
        "model.dropout=1 is not valid: must be in [0, 1)",
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "dataset.n_per_class=0",
            "dataset.n_per_class=0 is not valid: must be a positive integer, or null (all of them)",
        ),
        (
            "dataset.eval_per_class=some",
            "dataset.eval_per_class=some is not valid: must be balanced",
        ),
        ("dataset.memory_limit_gb=0", "dataset.memory_limit_gb=0 is not valid: must be a positive"),
        ("dataset.num_workers=-1", "dataset.num_workers=-1 is not valid: must be 0 or more"),
    ],
)
def test_celeba_value_is_refused(
    override: str, message: str, path_overrides: list[str], tmp_path: Path
):
    assert _refused([*path_overrides, "dataset=celeba", override], tmp_path).startswith(message)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [],
            "dataset.root=null is not valid: give the folder of your pictures "
            "(root/<class>/<picture>), or a .zip of it",
        ),
        (["dataset.val_fraction=1.5"], "dataset.val_fraction=1.5 is not valid: must be between 0"),
        (["dataset.test_fraction=0"], "dataset.test_fraction=0 is not valid: must be between 0"),
        (
            ["dataset.val_fraction=0.5", "dataset.test_fraction=0.5"],
            "dataset.test_fraction=0.5 is not valid: with dataset.val_fraction=0.5 nothing would "
            "be left to train on; together they must be below 1",
        ),
        (["dataset.grayscale=maybe"], "dataset.grayscale=maybe is not valid: must be true or"),
    ],
)
def test_image_folder_value_is_refused(
    overrides: list[str], message: str, path_overrides: list[str], tmp_path: Path
):
    root = [] if not overrides else [f"dataset.root={tmp_path}"]
    composed = [*path_overrides, "dataset=image_folder", *root, *overrides]
    assert _refused(composed, tmp_path).startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_accelerator_without_a_gpu(quick_overrides: list[str], tmp_path: Path):
    message = _refused([*quick_overrides, "accelerator=gpu"], tmp_path)
    assert message.startswith("trainer.accelerator=gpu is not valid: this machine has no GPUs")
    assert "use accelerator=cpu" in message


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a_file").write_text("")
    return tmp_path / "a_file" / "run"


def _read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "locked").mkdir(mode=0o555)
    return tmp_path / "locked" / "run"


@pytest.mark.parametrize(
    ("output_dir", "reason"),
    [(_under_a_file, "a_file is a file, not a folder"), (_read_only, "locked is not writable")],
)
def test_output_folder_that_cannot_be_written(
    output_dir: Callable[[Path], Path], reason: str, quick_overrides: list[str], tmp_path: Path
):
    folder = output_dir(tmp_path)
    message = _refused(with_output_dir(quick_overrides, folder), tmp_path)
    assert message.startswith(f"paths.output_dir={folder} is not valid: ")
    assert reason in message


# -- checkpoints -------------------------------------------------------------------------------


class CreatesFolderWhenUnpickled:
    """A checkpoint payload that runs code when unpickled: it makes the folder ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _not_a_checkpoint(path: Path) -> None:
    path.write_text("hello, I am a text file\n")


def _no_state_dict(path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, path)


def _runs_code(path: Path) -> None:
    torch.save({"state_dict": {}, "x": CreatesFolderWhenUnpickled(path.parent / "marker")}, path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (None, "no such file"),
        (_not_a_checkpoint, "not a checkpoint: torch.load cannot read it"),
        (_no_state_dict, "not a Lightning checkpoint (it has no state_dict)"),
        (_runs_code, "plain data (posix.mkdir), which could run code when loaded"),
    ],
)
def test_bad_checkpoint_is_refused(make, reason: str, quick_overrides: list[str], tmp_path: Path):
    path = tmp_path / "bad.ckpt"
    if make:
        make(path)
    with pytest.raises(ConfigError) as err:
        run(compose_config([*quick_overrides, f"ckpt_path={path}"]))
    assert str(err.value).startswith(f"ckpt_path={path} is not valid: ")
    assert reason in str(err.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
    assert not (tmp_path / "marker").exists()


def test_code_in_a_checkpoint_never_runs(tmp_path: Path):
    # The payload is live: plain unpickling runs it...
    pickle.loads(pickle.dumps(CreatesFolderWhenUnpickled(tmp_path / "proof")))
    assert (tmp_path / "proof").is_dir()
    # ...but the checkpoint check refuses it unrun.
    _runs_code(tmp_path / "evil.ckpt")
    with pytest.raises(ConfigError, match="torch.load\\(weights_only=True\\) refused it"):
        check_checkpoint(tmp_path / "evil.ckpt", torch.nn.Linear(2, 2))
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("train_first", ["true", "false"])
def test_checkpoint_of_another_model_shape(
    train_first: str, quick_overrides: list[str], tmp_path: Path
):
    small = [*quick_overrides, "model.hidden_sizes=[8]", "trainer.max_epochs=1", "test=false"]
    run(compose_config(with_output_dir(small, tmp_path / "small")))
    last = tmp_path / "small" / "checkpoints" / "last.ckpt"
    wider = [
        *quick_overrides,
        "model.hidden_sizes=[16]",
        f"ckpt_path={last}",
        f"train={train_first}",
    ]
    with pytest.raises(ConfigError) as err:
        run(compose_config(wider))
    message = str(err.value)
    assert "its weights do not fit this model (hidden_sizes=[8] there, [16] here)" in message
    assert "net.1.weight: [8, 784] in the checkpoint, [16, 784] in this model" in message
    assert "net.3.weight: [10, 8] in the checkpoint, [10, 16] in this model" in message
    assert not (tmp_path / "run").exists()


# -- data files --------------------------------------------------------------------------------


def _truncate_archive(raw: Path) -> None:
    archive = raw / "train-images-idx3-ubyte.gz"
    archive.write_bytes(archive.read_bytes()[:1000])


def _labels_as_images(raw: Path) -> None:
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros(600, dtype=np.uint8))


def _short_payload(raw: Path) -> None:
    archive = raw / "train-images-idx3-ubyte.gz"
    data = gzip.decompress(archive.read_bytes())
    archive.write_bytes(gzip.compress(data[: len(data) // 2]))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate_archive, "cannot be decompressed (Compressed file ended"),
        (_labels_as_images, "its magic number is 0x00000801, expected 0x00000803"),
        (_short_payload, "bytes where its header announces 600 items (470416 bytes)"),
    ],
)
def test_damaged_mnist_file_is_named(damage, reason: str, mnist_dir: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(mnist_dir, data)
    damage(data / "MNIST" / "raw")
    dm = MNISTDataModule(str(data), str(tmp_path / "cache"), val_size=100)
    with pytest.raises(MNISTFormatError) as err:
        dm.prepare_data()
        dm.setup("fit")
    message = str(err.value)
    assert message.startswith(f"{data / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'} ")
    assert reason in message and "Replace it with an intact copy" in message


def test_validation_split_larger_than_the_data(mnist_dir: Path, tmp_path: Path):
    dm = MNISTDataModule(str(mnist_dir), str(tmp_path / "cache"), val_size=600)
    dm.prepare_data()
    with pytest.raises(ConfigError, match="dataset.val_size=600 is not valid: must be less than"):
        dm.setup("fit")


@pytest.mark.parametrize("missing", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_missing_celeba_metadata_file(missing: str, tmp_path: Path, path_overrides: list[str]):
    tree = make_celeba(tmp_path / "data" / "celeba")
    (tree / missing).unlink()
    overrides = [*path_overrides, "dataset=celeba", f"paths.data_dir={tmp_path / 'data'}"]
    with pytest.raises(MissingDataError, match=f"No CelebA copy in {tree}") as err:
        run(compose_config(overrides))
    assert "list_attr_celeba.txt and list_eval_partition.txt" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


# -- the command line: the message alone, and Hydra's own messages --------------------------------


def _no_run_started(result, cwd: Path) -> None:
    assert result.returncode == 1
    assert "epoch 1/" not in result.stdout + result.stderr
    assert not list(cwd.glob("outputs/*/runs/*/checkpoints"))


def test_cli_prints_the_message_alone(mnist_dir: Path, tmp_path: Path):
    args = [*quick(mnist_dir, tmp_path), "model.dropout=1.5"]
    result = train(*args, cwd=tmp_path)
    _no_run_started(result, tmp_path)
    assert "model.dropout=1.5 is not valid: must be in [0, 1)\n" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Set the environment variable HYDRA_FULL_ERROR=1" in result.stderr


@pytest.mark.slow  # a second command; the message alone is the fast tier's (above)
def test_cli_prints_the_traceback_when_asked(mnist_dir: Path, tmp_path: Path):
    args = [*quick(mnist_dir, tmp_path), "model.dropout=1.5"]
    full = train(*args, cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr
    assert "ch12_lightning.errors.ConfigError: model.dropout=1.5 is not valid" in full.stderr


# The command line prints InputErrors as it prints ConfigErrors (above); the fast tier checks
# the message of a damaged file in this process (test_damaged_mnist_file_is_named).
@pytest.mark.slow
def test_cli_names_a_damaged_data_file(mnist_dir: Path, tmp_path: Path):
    shutil.copytree(mnist_dir, tmp_path / "data")
    _labels_as_images(tmp_path / "data" / "MNIST" / "raw")
    args = [*quick(mnist_dir, tmp_path), f"paths.data_dir={tmp_path / 'data'}"]
    result = train(*args, cwd=tmp_path)
    _no_run_started(result, tmp_path)
    assert "train-images-idx3-ubyte.gz is not a valid MNIST file" in result.stderr
    assert "Traceback" not in result.stderr


TRAINER_TAKES = "lightning.pytorch.trainer.trainer.Trainer"


@pytest.mark.parametrize(
    ("override", "lines"),
    [
        (
            "optimizer=adamx",
            [
                "Could not find 'optimizer/adamx'",
                "Available options in 'optimizer':\n\tadam\n\tadamw\n\tsgd",
            ],
        ),
        (  # a misspelled key: the project's answer, not Hydra's "use +trainer.max_epoch"
            "trainer.max_epoch=3",
            [f"trainer.max_epoch=3 is not valid: {TRAINER_TAKES} has no setting max_epoch; did "
             "you mean max_epochs or min_epochs or max_steps? It takes: accelerator, "],
        ),
        (
            "dataset.batchsize=8",
            ["dataset.batchsize=8 is not valid: ch12_lightning.data.mnist.MNISTDataModule has "
             "no setting batchsize; did you mean batch_size or eval_batch_size?"],
        ),
    ],
)  # fmt: skip
def test_hydra_names_unknown_options_and_keys(override: str, lines: list[str], tmp_path: Path):
    result = train(override, cwd=tmp_path)
    assert result.returncode == 1
    for line in lines:
        assert line in result.stderr
    assert "Traceback" not in result.stderr and f"+{override}" not in result.stderr
    if "." in override:  # a key's message, and Hydra's line on HYDRA_FULL_ERROR
        assert len(result.stderr.strip().splitlines()) == 3
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lrr=0.1", "optimizer.lrr=0.1 is not valid: optimizer=adam (torch.optim.adam."
         "Adam) has no setting lrr; did you mean lr? It takes: amsgrad, betas,"),
        ("seedd=3", "seedd=3 is not valid: the config has no key seedd; did you mean seed? It "
         "takes: callbacks, ckpt_path, dataset,"),
        ("paths.data_dirr=x", "paths.data_dirr=x is not valid: paths has no key data_dirr; did "
         "you mean data_dir?"),
        ("callbacks.early_stoping.patience=3", "callbacks.early_stoping.patience=3 is not valid: "
         "callbacks has no key early_stoping. It takes: confusion_matrices,"),
        # Lightning takes it, the config does not list it: Hydra's + is the answer
        ("trainer.gradient_clip_val=0.5", "trainer.gradient_clip_val=0.5 is not valid: the config "
         f"does not list gradient_clip_val, which {TRAINER_TAKES} takes: add it with "
         "+trainer.gradient_clip_val=0.5"),
    ],
)  # fmt: skip
def test_a_key_the_config_lacks_gets_the_projects_message(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        api.compose([override])
    assert str(err.value).startswith(message)
    assert err.value._render_traceback_() == [f"UnknownKeyError: {err.value}"]  # a cell's lines


def test_every_input_error_is_reported_without_a_traceback():
    # train.py prints InputErrors alone; the CLI tests above check two of them end to end.
    for error in (MNISTFormatError, MissingDataError, CelebAFormatError, CorruptImageError,
                  SweepStrategyError):  # fmt: skip
        assert issubclass(error, InputError)
