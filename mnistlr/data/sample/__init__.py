"""Bundled package data: the mnist-sample dataset (see NOTICE)."""
