"""The Trainer's profiler when none is asked for: Lightning's pass-through, without its cost."""

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler


class QuietProfiler(PassThroughProfiler):
    """Records nothing, like Lightning's default ``PassThroughProfiler``, but hands out one
    ready context instead of building a generator-based context manager per call.

    Lightning wraps every hook, callback and step it runs in ``profiler.profile(...)``, some 70
    times per training step with the default callbacks; a small MLP's step is short enough for
    that to be a few percent of it. ``trainer.profiler=simple`` (or any other) replaces it.
    """

    _context = nullcontext()

    def profile(self, action_name: str) -> AbstractContextManager:
        return self._context
