"""Checks of a run's inputs before anything is read or built: config values and keys,
checkpoints."""
