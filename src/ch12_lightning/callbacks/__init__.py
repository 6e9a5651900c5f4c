"""Callbacks that make runs readable: in log files and in TensorBoard's HPARAMS tab."""
