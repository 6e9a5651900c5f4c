"""Processes a cluster starts (torchrun, SLURM, several nodes): one run folder, signals, and a
failing rank reported once."""
