"""One training run from a composed config: its pieces built, fitted, tested and recorded;
its checkpoints, resuming, a full disk."""
