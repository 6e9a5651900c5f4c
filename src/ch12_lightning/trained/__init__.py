"""What the commands for a trained run do (``eval``, ``predict``, ``export``; the commands
themselves are ``ch12_lightning/eval.py``, ``predict.py`` and ``export.py``): load the run
(``load``), then evaluate, predict on pictures (``pictures`` prepares them) or export."""
