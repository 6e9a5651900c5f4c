"""LightningDataModules, one per dataset, and the in-memory batching they share."""
