"""The project from Python or Jupyter: compose a config, train, read runs and sweeps back.

    from ch12_lightning import api

    run = api.train(["experiment=iris_book"])      # as ./ch12 train experiment=iris_book
    run.metrics["test/acc"]                       # 0.98
    api.load_run(run.folder).predict([5.1, 3.5, 1.4, 0.2])  # a flower as measured: setosa

Everything runs in the calling process, as the command line runs it: the same configs, checks,
messages and run folders; the working directory is never changed.
"""

from ch12_lightning.api.sweeps import load_sweep
from ch12_lightning.api.training import Run, compose, load_run, train

__all__ = ["Run", "compose", "load_run", "load_sweep", "train"]
