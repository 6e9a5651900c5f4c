"""The step on TensorBoard's x axis, for what callbacks write to the loggers themselves."""

import lightning as L


def logged_step(trainer: L.Trainer) -> int:
    """The step Lightning logs the current metrics at: the optimizer steps taken (it counts
    the batches that stepped), with an epoch's metrics at the index of its last step. Lightning's
    own LearningRateMonitor logs at this step too, so every curve shares one axis."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped
