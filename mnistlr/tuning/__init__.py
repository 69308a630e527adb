"""Tuning: search spaces, stratified cross-validation and the trial runner."""
