"""Datasets: the registry of named datasets, download and import, and the bundled sample."""
