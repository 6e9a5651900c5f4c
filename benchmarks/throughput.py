"""Training throughput of ch12_lightning against the hand-written limit and the naive pipeline.

Same model (the book's 784-32-16-10 MLP, or with ``--net cnn`` the CNN of ``model=cnn``), batch
size, optimizer (Adam 1e-3) and thread count for all of them:

1. naive: torchvision MNIST with a per-sample ToTensor/Normalize transform, a plain DataLoader,
   a hand-written loop;
2. limit: a hand-written loop over the MNIST tensors already in memory (batched indexing), with
   torch's default Adam, as a person writes it;
3. limit_fused: the same loop with the Adam implementation ours uses (``fused=True``);
4. ours: ch12_lightning's own path as ``train`` runs it (DataModule, LightningModule, Trainer with
   the default callbacks and logging: Lightning's automatic optimization, one mini-batch per
   step).

Each configuration runs in a fresh process (so its peak memory is its own), and they take
turns for ``--rounds`` rounds, so a burst of other work on a shared machine hits all of them;
figures are medians over rounds, ratios the median of each round's ratio. Per process: training
samples per second (median over epochs, the first excluded as warm-up), the process's run time,
the wall time of the whole command and its peak RSS.

The recipe part runs the whole ``train experiment=mnist_book`` command against
``hand_recipe.py``, the same recipe written by hand, in pairs of whole processes.

The floor part shows what any Lightning loop costs on this machine: the smallest LightningModule
under ``Trainer(barebones=True)`` against the hand-written fused loop, in one process.

Further parts: CelebA data preparation (first build against a run served from the cache),
image folder preparation (the real CelebA JPEGs as a folder of class folders, and zips of it,
against the CelebA module on the same pictures), start-up (``--help``, ``--cfg job``, and launch
to first training step of the real command), and CPU threads (the limit loop with 1 and 2
intra-op threads, alone and beside a busy process).

    python benchmarks/throughput.py --data-dir ../shared/data
    python benchmarks/throughput.py --parts celeba image_folder --data-dir ../shared/data --rounds 3
    python benchmarks/throughput.py --parts image_folder --data-dir ../shared/data --user-machine ''
"""

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

MODES = ("naive", "limit", "limit_fused", "ours")
# The full CelebA's largest balanced training set for "Male" (2 x 68,261) with the whole
# validation and test partitions (19,867 and 19,962): what the README extrapolates to.
FULL_CELEBA_BALANCED = 176_351
TRAIN = [sys.executable, "-m", "ch12_lightning.train"]


def _mnist_datamodule(args: argparse.Namespace):
    from ch12_lightning.data.mnist import MNISTDataModule

    datamodule = MNISTDataModule(args.data_dir, args.cache_dir, val_size=args.val_size)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def _as_plain_torch() -> None:
    """The hand-written pipelines use torch alone. Our data loading imported Lightning, whose
    import makes torch probe for GPUs at every Adam step (see ``run/build.py``); undo that here."""
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def _device(args: argparse.Namespace) -> str:
    return "cuda" if args.accelerator == "gpu" else "cpu"


def _network(args: argparse.Namespace):
    """The network every pipeline trains: the book's MLP, or the CNN of ``model=cnn``."""
    from ch12_lightning.models.nets.cnn import CNN
    from ch12_lightning.models.nets.mlp import MLP

    return CNN((1, 28, 28), 10) if args.net == "cnn" else MLP((1, 28, 28), 10, [32, 16], "relu")


def _hand_loop(
    batches: Callable[[], Iterable], args: argparse.Namespace, fused: bool | None = None
) -> list[float]:
    """Train the network with a plain loop; return the seconds each epoch took."""
    import torch

    device = _device(args)
    model = _network(args).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for inputs, targets in batches():
            loss = loss_fn(model(inputs.to(device)), targets.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_naive(args: argparse.Namespace) -> tuple[list[float], int]:
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import MNIST

    root = _mnist_datamodule(args).root  # extracts the archives
    _as_plain_torch()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.1307, 0.3081)])
    dataset = MNIST(root, train=True, transform=transform)
    dataset = Subset(dataset, range(len(dataset) - args.val_size))  # as many samples as ours
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    return _hand_loop(lambda: loader, args), len(dataset)


def run_limit(args: argparse.Namespace, fused: bool | None = None) -> tuple[list[float], int]:
    import torch

    train = _mnist_datamodule(args).splits["train"]
    _as_plain_torch()
    inputs, targets = train.inputs.to(_device(args)), train.targets.to(_device(args))

    def batches():
        order = torch.randperm(len(targets), device=targets.device)
        for start in range(0, len(targets), args.batch_size):
            index = order[start : start + args.batch_size]
            yield inputs[index], targets[index]

    return _hand_loop(batches, args, fused), len(targets)


def run_ours(args: argparse.Namespace) -> tuple[list[float], int]:
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.callbacks import Callback

    from ch12_lightning import config_dir
    from ch12_lightning.run.build import build, prepare

    overrides = [
        f"paths.data_dir={args.data_dir}",
        f"paths.cache_dir={args.cache_dir}",
        f"paths.root_dir={args.out_dir}",
        f"paths.output_dir={args.out_dir}/ours",
        f"dataset.batch_size={args.batch_size}",
        f"dataset.val_size={args.val_size}",
        f"trainer.max_epochs={args.epochs}",
        f"torch_num_threads={args.threads}",
        f"trainer.accelerator={args.accelerator}",
        f"model={args.net}",
        *args.ours_override,
    ]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)

    class EpochTimer(Callback):
        """Time from the first to the last training batch of each epoch (no validation)."""

        def __init__(self) -> None:
            self.seconds: list[float] = []

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.perf_counter()

        def on_validation_start(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                self.seconds.append(time.perf_counter() - self.start)

    prepare(cfg)
    datamodule, model, trainer = build(cfg)
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    return timer.seconds, len(datamodule.splits["train"])


def run_prepare(args: argparse.Namespace) -> None:
    """Prepare one picture data set once (``--one-prepare``: JSON of ``module``, ``celeba`` or
    ``image_folder``, and its arguments) and print its figures (JSON): seconds, images, cache
    size, peak memory; then, from the cache, how long setup and one pass over every pixel take."""
    from ch12_lightning.data.celeba import CelebADataModule
    from ch12_lightning.data.image_folder import ImageFolderDataModule

    settings = json.loads(args.one_prepare)
    module = {"celeba": CelebADataModule, "image_folder": ImageFolderDataModule}
    datamodule = module[settings.pop("module")](cache_dir=args.cache_dir, **settings)
    datamodule.prepare_data()
    prepare_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    datamodule.setup("fit")
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    for split in datamodule.splits.values():  # every pixel read and normalized once
        for first in range(0, len(split), 1024):
            split.__getitems__(range(first, min(first + 1024, len(split))))[0].sum()
    pass_s = time.perf_counter() - start
    images = sum(len(split) for split in datamodule.splits.values())
    decode_s = datamodule.decode_seconds or 0
    figures = {"seconds": datamodule.prepare_seconds, "decode_s": decode_s, "images": images}
    figures |= {"rate": images / decode_s if decode_s else 0, "peak_mb": prepare_mb}
    figures |= {"cache_bytes": datamodule._cache_file.stat().st_size}
    print(json.dumps(figures | {"setup_s": setup_s, "pass_s": pass_s}))


def _celeba_labels(real: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Each real CelebA image's "Male" attribute (1 or 0) and official partition (0, 1, 2)."""
    from ch12_lightning.data.celeba_files import read_attribute, read_partitions

    attribute = read_attribute(real / "list_attr_celeba.txt", "Male")
    return attribute, read_partitions(real / "list_eval_partition.txt")


def make_celeba_tree(real: Path, folder: Path, images: int) -> int:
    """A CelebA tree of ``images`` JPEGs copied round-robin from the real ``real`` copy, with
    the metadata rows of their originals (same partitions and attributes); returns the number
    of training images of the rarer class. Built once per size."""
    labels, partitions = _celeba_labels(real)
    sources = sorted(p.name for p in (real / "img_align_celeba").glob("*.jpg"))
    names = [f"{i + 1:06d}.jpg" for i in range(images)]
    origin = {name: sources[i % len(sources)] for i, name in enumerate(names)}
    if not (folder / "list_eval_partition.txt").is_file():
        (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
        attr_lines = (real / "list_attr_celeba.txt").read_text().splitlines()
        rows = {line.split()[0]: line.split()[1:] for line in attr_lines[2:] if line.strip()}
        for name in names:
            shutil.copyfile(
                real / "img_align_celeba" / origin[name], folder / "img_align_celeba" / name
            )
        body = [f"{name} {' '.join(rows[origin[name]])}" for name in names]
        attr = "\n".join([str(images), attr_lines[1], *body]) + "\n"
        (folder / "list_attr_celeba.txt").write_text(attr)
        parts = "\n".join(f"{name} {partitions[origin[name]]}" for name in names) + "\n"
        (folder / "list_eval_partition.txt").write_text(parts)
    train = [labels[origin[n]] for n in names if partitions[origin[n]] == 0]
    return min(train.count(0), train.count(1))


def make_image_folder(real: Path, top: Path) -> dict[str, Path]:
    """The real CelebA JPEGs sorted into ``celeba_male/train|val|test/female|male`` (official
    partitions, "Male") under ``top``, and zips of that folder as ``zip -r`` makes them: stored
    (how JPEGs are usually zipped) and deflated. Built once; returns name -> root."""
    folder = top / "celeba_male"
    zips = {how: top / f"celeba_male_{how}.zip" for how in ("stored", "deflated")}
    if not folder.is_dir():
        labels, partitions = _celeba_labels(real)
        building = top / "building"
        shutil.rmtree(building, ignore_errors=True)
        for source in sorted((real / "img_align_celeba").glob("*.jpg")):
            split = ("train", "val", "test")[partitions[source.name]]
            target = building / split / ("female", "male")[labels[source.name]] / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        building.rename(folder)
    for how, path in zips.items():
        if not path.is_file():
            compression = zipfile.ZIP_STORED if how == "stored" else zipfile.ZIP_DEFLATED
            with zipfile.ZipFile(path.with_suffix(".part"), "w", compression) as archive:
                for entry in [folder, *sorted(folder.rglob("*"))]:
                    archive.write(entry, entry.relative_to(top))
            path.with_suffix(".part").rename(path)
    return {"folder": folder} | {f"zip {how}": path for how, path in zips.items()}


def one(args: argparse.Namespace) -> None:
    """Run one configuration in this process and print its figures as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    start = time.perf_counter()
    runs = {
        "naive": run_naive,
        "limit": run_limit,
        "limit_fused": lambda args: run_limit(args, fused=True),
        "ours": run_ours,
    }
    seconds, samples = runs[args.mode](args)
    rates = [samples / s for s in seconds[1:]] or [samples / seconds[0]]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"samples_per_s": statistics.median(rates), "epochs": len(seconds)}
    figures |= {"run_s": time.perf_counter() - start, "peak_mb": peak_mb}
    print(json.dumps(figures))


def _child(args: argparse.Namespace, *extra: str) -> list[str]:
    """The command that re-runs this script for one measurement."""
    return [
        sys.executable, __file__, "--data-dir", args.data_dir, "--cache-dir", args.cache_dir,
        "--out-dir", args.out_dir, "--accelerator", args.accelerator,
        "--val-size", str(args.val_size), "--net", args.net,
        *(f"--ours-override={override}" for override in args.ours_override), *extra,
    ]  # fmt: skip


def _run_json(command: list[str]) -> dict:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return figures | {"wall_s": time.perf_counter() - start}


def measure(mode: str, batch_size: int, args: argparse.Namespace, threads: int) -> dict:
    epochs = args.naive_epochs if mode == "naive" else args.epochs
    return _run_json(
        _child(
            args,
            "--one",
            mode,
            "--batch-size",
            str(batch_size),
            "--epochs",
            str(epochs),
            "--threads",
            str(threads),
        )  # fmt: skip
    )


def _median_figures(rounds: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def _ratios(rounds: list[dict], mode: str, other: str) -> list[float]:
    return [r[mode]["samples_per_s"] / r[other]["samples_per_s"] for r in rounds]


def throughput_part(args: argparse.Namespace) -> None:
    print(f"\n## Training throughput ({args.rounds} rounds, medians)")
    print(f"{'batch':>5} {'pipeline':>8} {'samples/s':>10} {'run s':>7} {'wall s':>7} {'MB':>6}")
    for batch_size in args.batch_sizes:
        rounds = [
            {mode: measure(mode, batch_size, args, args.threads) for mode in args.modes}
            for _ in range(args.rounds)
        ]
        for mode in args.modes:
            f = _median_figures([r[mode] for r in rounds])
            print(
                f"{batch_size:>5} {mode:>8} {f['samples_per_s']:>10.0f} {f['run_s']:>7.1f} "
                f"{f['wall_s']:>7.1f} {f['peak_mb']:>6.0f}"
            )
        for other in [mode for mode in ("limit", "limit_fused", "naive") if mode in args.modes]:
            ratios = _ratios(rounds, "ours", other)
            print(
                f"{batch_size:>5} ours/{other} {statistics.median(ratios):.2f} "
                f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
            )


def _user_machine(command: list[str], args: argparse.Namespace) -> list[str]:
    """``command`` under an ordinary machine's limits (1024 open files, 64 MB /dev/shm) where
    the workplace's tool for that is at hand."""
    return [args.user_machine, *command] if args.user_machine else command


def _limits(args: argparse.Namespace) -> str:
    return "under as-user-machine" if args.user_machine else "without user-machine limits"


def _prepare_rounds(args: argparse.Namespace, runs: dict[str, dict]) -> dict[str, list]:
    """Each of ``runs`` (name -> ``--one-prepare`` settings) prepared in a fresh cache, taking
    turns for ``--rounds`` rounds: per round, the figures of the first build and of a run served
    from its cache, each in its own process (under ``--user-machine``)."""
    rounds: dict[str, list] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, settings in runs.items():
            with tempfile.TemporaryDirectory() as cache:
                command = _child(args, "--one-prepare", json.dumps(settings), "--cache-dir", cache)
                command = _user_machine(command, args)
                rounds[name].append((_run_json(command), _run_json(command)))
    return rounds


def celeba_part(args: argparse.Namespace) -> None:
    real = Path(args.data_dir) / "celeba"
    if not real.is_dir():
        print(f"\n## CelebA data preparation: skipped, no celeba folder in {args.data_dir}")
        return
    print(f"\n## CelebA data preparation ({_limits(args)}, median of {args.rounds})")
    tree = Path(args.cache_dir) / "tree"
    per_class = make_celeba_tree(real, tree, args.celeba_images)
    copy = {"data_dir": str(tree), "n_per_class": per_class, "eval_per_class": "all"}
    runs = {
        "practice": {"module": "celeba", "data_dir": str(real)},
        "copy": {"module": "celeba", **copy, "image_size": 64, "grayscale": False},
    }
    measured = {}
    for name, rounds in _prepare_rounds(args, runs).items():
        first, again = (_median_figures([pair[i] for pair in rounds]) for i in (0, 1))
        measured[name] = first, again
        title = (
            "practice (real images, 32 px gray)" if name == "practice"
            else f"{args.celeba_images:,}-image copy: balanced train, whole val/test, 64 px RGB"
        )  # fmt: skip
        per_image = first["cache_bytes"] / first["images"]
        print(f"{title}: {first['images']:.0f} images")
        print(
            f"  first build {first['seconds']:.2f} s, of which decoding {first['decode_s']:.2f} s "
            f"({first['rate']:.0f} images/s); peak RSS "
            f"{first['peak_mb']:.0f} MB; cache {first['cache_bytes'] / 1e6:.1f} MB "
            f"({per_image:.0f} bytes per image)"
        )
        print(
            f"  from the cache: {again['seconds']:.3f} s to find it, {again['setup_s']:.3f} s to "
            f"map it, {again['pass_s']:.2f} s to serve every pixel once"
        )
    practice, (copy, _) = measured["practice"][0], measured["copy"]
    # Reading the full metadata files (what the practice run does) plus everything else per
    # image at the copy's rate: an upper bound, since the copy's time includes its own metadata.
    fixed = practice["seconds"] - practice["decode_s"]
    full = FULL_CELEBA_BALANCED
    minutes = (fixed + full * copy["seconds"] / copy["images"]) / 60
    per_image = copy["cache_bytes"] / copy["images"]
    print(
        f"extrapolated to the full set's {full:,} images at 64 px RGB: about {minutes:.1f} min "
        f"to prepare, a {full * per_image / 1e9:.2f} GB cache, as much memory for the pixels"
    )


def image_folder_part(args: argparse.Namespace) -> None:
    """The image folder module on the real CelebA JPEGs as a folder and as zips of it, beside
    the CelebA module on the same pictures; rate ratios are the median of each round's."""
    real = Path(args.data_dir) / "celeba"
    if not real.is_dir():
        print(f"\n## Image folder preparation: skipped, no celeba folder in {args.data_dir}")
        return
    print(f"\n## Image folder preparation ({_limits(args)}, median of {args.rounds})")
    roots = make_image_folder(real, Path(args.cache_dir) / "image_folder_tree")
    sizes = "; ".join(
        f"{name} {sum(p.stat().st_size for p in root.rglob('*.jpg')) / 1e6:.1f} MB"
        if root.is_dir() else f"{name} {root.stat().st_size / 1e6:.1f} MB"
        for name, root in roots.items()
    )  # fmt: skip
    print(f"the real CelebA JPEGs in train|val|test/female|male (partitions, Male): {sizes}")
    for title, settings in (
        ("32 px gray, 1000 per class in train (CelebA's practice sizes), all of val/test",
         {"image_size": 32, "grayscale": True, "n_per_class": 1000}),
        ("64 px RGB, all pictures", {"image_size": 64, "grayscale": False, "n_per_class": None}),
    ):  # fmt: skip
        runs = {
            name: {"module": "image_folder", "root": str(root), "data_dir": args.data_dir}
            for name, root in roots.items()
        }
        runs["CelebA module"] = {"module": "celeba", "data_dir": str(real), "eval_per_class": "all"}
        rounds = _prepare_rounds(args, {name: run | settings for name, run in runs.items()})
        print(f"{title}: {rounds['folder'][0][0]['images']} images")
        print(
            f"  {'source':<14} {'images/s':>8} {'/folder':>7} {'build s':>7} {'B/image':>7} "
            f"{'peak MB':>7} | from the cache: {'find s':>6} {'map s':>6} {'pass s':>6}"
        )
        for name, pairs in rounds.items():
            first, again = (_median_figures([pair[i] for pair in pairs]) for i in (0, 1))
            ratio = statistics.median(
                pair[0]["rate"] / folder[0]["rate"]
                for pair, folder in zip(pairs, rounds["folder"], strict=True)
            )
            print(
                f"  {name:<14} {first['rate']:>8.0f} {ratio:>7.2f} {first['seconds']:>7.2f} "
                f"{first['cache_bytes'] / first['images']:>7.0f} {first['peak_mb']:>7.0f} | "
                f"{'':>15} {again['seconds']:>6.3f} {again['setup_s']:>6.3f} "
                f"{again['pass_s']:>6.3f}"
            )


def _seconds_to_line(command: list[str], marker: str) -> float:
    """Seconds from launching ``command`` until it prints a line containing ``marker``; the
    process is then stopped."""
    start = time.perf_counter()
    environment = os.environ | {"PYTHONUNBUFFERED": "1"}  # lines as they are printed
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
    )
    try:
        for line in process.stdout:
            if marker in line:
                return time.perf_counter() - start
        raise RuntimeError(f"{' '.join(command)} ended without printing {marker!r}")
    finally:
        process.kill()
        process.wait()


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=True)
    return time.perf_counter() - start


def startup_part(args: argparse.Namespace) -> None:
    print(f"\n## Start-up (median of {args.rounds})")
    runs = f"hydra.run.dir={args.out_dir}/startup"
    first_step = [
        *TRAIN, f"paths.data_dir={args.data_dir}", f"paths.cache_dir={args.cache_dir}",
        f"paths.root_dir={args.out_dir}", f"dataset.val_size={args.val_size}", runs,
    ]  # fmt: skip
    timings = {
        "--help": [*TRAIN, "--help"],
        "--cfg job": [*TRAIN, "--cfg", "job"],
        # The floors: what any script using these libraries pays before its first line runs.
        "import torch": [sys.executable, "-c", "import torch"],
        "import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
        "import lightning": [sys.executable, "-c", "import lightning"],
    }
    for name, command in timings.items():
        seconds = statistics.median(_seconds(command) for _ in range(args.rounds))
        print(f"{name:>28}: {seconds:.2f} s")
    seconds = statistics.median(
        _seconds_to_line(first_step, "training starts") for _ in range(args.rounds)
    )
    print(f"{'launch to first training step':>28}: {seconds:.2f} s (MNIST, cached extraction)")


def _timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of ``command`` and what it printed."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds, result.stdout


def recipe_part(args: argparse.Namespace) -> None:
    """The whole book recipe, ``train experiment=mnist_book`` (start-up, data, epochs with
    validation, checkpoints, TensorBoard, pictures, test), against ``hand_recipe.py`` doing the
    same training, validation, best-weights file and test by hand; whole processes, in pairs
    whose order alternates."""
    epochs = args.recipe_epochs
    print(f"\n## Book recipe, whole process ({epochs} epochs, {args.recipe_pairs} pairs, medians)")
    datamodule = _mnist_datamodule(args)
    out = Path(args.out_dir) / "recipe"
    ours = [
        *TRAIN, "experiment=mnist_book", f"trainer.max_epochs={epochs}",
        f"paths.data_dir={args.data_dir}", f"paths.cache_dir={args.cache_dir}",
        f"paths.root_dir={args.out_dir}", f"hydra.run.dir={out / 'ours'}",
        f"dataset.val_size={args.val_size}",
    ]  # fmt: skip
    hand = [
        sys.executable, str(Path(__file__).with_name("hand_recipe.py")), str(datamodule.root),
        str(out / "hand"), "--epochs", str(epochs), "--val-size", str(args.val_size),
    ]  # fmt: skip
    seconds: dict[str, list[float]] = {"ours": [], "hand": []}
    test_acc: dict[str, list[float]] = {"ours": [], "hand": []}
    for pair in range(args.recipe_pairs):
        for name in ("ours", "hand") if pair % 2 == 0 else ("hand", "ours"):
            wall, printed = _timed(ours if name == "ours" else hand)
            if name == "ours":
                accuracy = json.loads((out / "ours" / "metrics.json").read_text())["metrics"]
                test_acc[name].append(accuracy["test/acc"])
            else:
                test_acc[name].append(json.loads(printed.splitlines()[-1])["test_acc"])
            seconds[name].append(wall)
    for name in seconds:
        runs = ", ".join(f"{s:.1f}" for s in seconds[name])
        print(
            f"{name:>5}: {statistics.median(seconds[name]):.1f} s (pairs: {runs}); "
            f"test acc {statistics.median(test_acc[name]):.4f}"
        )
    ratios = [o / h for o, h in zip(seconds["ours"], seconds["hand"], strict=True)]
    print(
        f"ours/hand wall time {statistics.median(ratios):.2f} "
        f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def _bare_lightning_epoch(loader: Iterable, args: argparse.Namespace) -> float:
    """Seconds of one epoch of the smallest LightningModule that trains the network
    (``training_step`` returns the loss; fused Adam) under ``Trainer(barebones=True)``."""
    import lightning as L
    import torch

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = _network(args)
            self.loss_fn = torch.nn.CrossEntropyLoss()

        def training_step(self, batch, batch_idx):
            return self.loss_fn(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, fused=True)

    trainer = L.Trainer(
        max_epochs=1, accelerator=args.accelerator, barebones=True, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(Bare(), train_dataloaders=loader)
    return time.perf_counter() - start


def floor_part(args: argparse.Namespace) -> None:
    """What any Lightning loop costs here: the hand-written fused loop against a bare
    LightningModule fed by ours' DataLoader and by a plain iterable of pre-cut batches; one
    epoch each, alternating in this process, the first round a warm-up."""
    import torch

    from ch12_lightning.data.tensor_batches import batch_loader

    print(f"\n## Lightning's floor (batch 64, {args.rounds} rounds in one process, medians)")
    train = _mnist_datamodule(args).splits["train"]
    _as_plain_torch()
    inputs, targets = train.inputs, train.targets

    class PreCut:
        """One epoch of batches cut beforehand: no sampler, no DataLoader."""

        def __init__(self) -> None:
            order = torch.randperm(len(targets))
            self.batches = [
                (inputs[order[i : i + 64]], targets[order[i : i + 64]])
                for i in range(0, len(targets), 64)
            ]

        def __iter__(self):
            return iter(self.batches)

        def __len__(self) -> int:
            return len(self.batches)

    def hand() -> float:
        order = torch.randperm(len(targets))

        def batches() -> Iterable:
            for i in range(0, len(targets), 64):
                yield inputs[order[i : i + 64]], targets[order[i : i + 64]]

        one_epoch = argparse.Namespace(**vars(args) | {"epochs": 1})
        return _hand_loop(batches, one_epoch, fused=True)[0]

    runs = {
        "hand-written loop, fused Adam": hand,
        "bare LightningModule, ours' DataLoader": lambda: _bare_lightning_epoch(
            batch_loader(train, 64, shuffle=True), args
        ),
        "bare LightningModule, pre-cut batches": lambda: _bare_lightning_epoch(PreCut(), args),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 1):
        for name, run in runs.items():
            elapsed = run()
            if round_:
                seconds[name].append(elapsed)
    hand_s = statistics.median(seconds["hand-written loop, fused Adam"])
    steps = math.ceil(len(targets) / 64)
    for name, values in seconds.items():
        median = statistics.median(values)
        print(
            f"{name:>40}: {median:.2f} s an epoch, {median / steps * 1e3:.2f} ms a step, "
            f"hand/this {hand_s / median:.2f}"
        )


def threads_part(args: argparse.Namespace) -> None:
    print(f"\n## CPU threads (limit loop, batch 64, {os.cpu_count()} cores, median of rounds)")
    busy_code = "import time\nend = time.time() + 600\nwhile time.time() < end: pass"
    for busy in (False, True):
        rates = {threads: [] for threads in (1, 2)}
        for _ in range(args.rounds):
            for threads in rates:
                neighbour = subprocess.Popen([sys.executable, "-c", busy_code]) if busy else None
                try:
                    rates[threads].append(measure("limit", 64, args, threads)["samples_per_s"])
                finally:
                    if neighbour:
                        neighbour.kill()
                        neighbour.wait()
        one_thread, two_threads = (statistics.median(rates[t]) for t in (1, 2))
        where = "beside a busy process" if busy else "alone"
        print(
            f"{where:>22}: 1 thread {one_thread:.0f}, 2 threads {two_threads:.0f} samples/s "
            f"(1 thread is {one_thread / two_threads:.2f}x 2 threads)"
        )


PARTS = {
    "recipe": recipe_part,
    "throughput": throughput_part,
    "celeba": celeba_part,
    "image_folder": image_folder_part,
    "startup": startup_part,
    "floor": floor_part,
    "threads": threads_part,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = os.environ.get("CH12_REAL_DATA") or os.environ.get("CH12_DATA_DIR", "data")
    parser.add_argument("--data-dir", default=default_data, help="folder holding MNIST/raw")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "ch12_bench"))
    parser.add_argument("--out-dir", default=str(Path(tempfile.gettempdir()) / "ch12_bench_out"))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--epochs", type=int, default=6, help="epochs; the first is warm-up")
    parser.add_argument("--naive-epochs", type=int, default=2)
    parser.add_argument("--recipe-epochs", type=int, default=20, help="epochs of the recipe part")
    parser.add_argument("--recipe-pairs", type=int, default=3, help="whole-process pairs")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions; medians are quoted")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--val-size", type=int, default=5000, help="held out of training")
    parser.add_argument("--accelerator", default="cpu", help="cpu, or gpu where there is one")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES),
        help="pipelines of the throughput part (naive takes long with --net cnn)",
    )  # fmt: skip
    parser.add_argument(
        "--net", choices=("mlp", "cnn"), default="mlp",
        help="the network of every pipeline: the book's MLP, or the CNN of model=cnn",
    )  # fmt: skip
    parser.add_argument(
        "--ours-override", action="append", default=[], metavar="KEY=VALUE",
        help="a config override for ours (repeatable), e.g. model.compile=true",
    )  # fmt: skip
    parser.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--one-prepare", help=argparse.SUPPRESS)
    parser.add_argument(
        "--celeba-images", type=int, default=20000,
        help="images of the CelebA copy built from the real ones for the scale measurement",
    )  # fmt: skip
    tool = Path(__file__).resolve().parents[2] / "shared" / "tools" / "as-user-machine"
    parser.add_argument(
        "--user-machine", default=str(tool) if tool.is_file() else "",
        help="command that applies an ordinary machine's limits to the CelebA and image folder "
        "parts ('' none)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "ours" not in args.modes:
        parser.error("--modes must include ours: the ratios are ours against the others")
    if args.one:
        args.mode = args.one
        one(args)
    elif args.one_prepare:
        run_prepare(args)
    else:
        print(f"threads={args.threads} accelerator={args.accelerator} net={args.net} "
              f"data={args.data_dir}")  # fmt: skip
        for part in args.parts:
            PARTS[part](args)


if __name__ == "__main__":
    main()
