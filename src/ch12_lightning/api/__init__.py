"""The project from Python or Jupyter: compose a config, train or sweep, read runs back.

    from ch12_lightning import api

    run = api.train(["experiment=iris_book"])      # as ./ch12 train experiment=iris_book
    run.metrics["test/acc"]                       # 0.98
    api.load_run(run.folder).predict([5.1, 3.5, 1.4, 0.2])  # a flower as measured: setosa
    api.sweep(["experiment=iris_book", "seed=1,2"])  # as ./ch12 train -m ...: its jobs, best first

Everything runs in the calling process, as the command line runs it (a sweep's jobs too, unless
its launcher starts processes of its own): the same configs, checks, messages and run and sweep
folders; the working directory is never changed.
"""

from ch12_lightning.api.sweeps import load_sweep, sweep
from ch12_lightning.api.training import Run, compose, load_run, train

__all__ = ["Run", "compose", "load_run", "load_sweep", "sweep", "train"]
