"""Hydra finds sweepers only in the ``hydra_plugins`` namespace: ch12_lightning's is here."""
