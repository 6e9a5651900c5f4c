"""Networks and the LightningModules that train them."""
