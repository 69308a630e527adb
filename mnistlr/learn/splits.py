"""Seeded stratified splits: a hold-out (`stratified_split`), K folds (`stratified_kfold`), derived seeds.

One home for how the training data is cut: `fit_model`'s hold-out, `--l2 auto --cv K`'s folds
(`mnistlr.learn.path`) and `sweep`'s folds (`mnistlr.tuning`) all come from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnistlr.errors import UsageError


def stratified_split(y, n_val: int, rng) -> tuple[Any, Any]:
    """Indices (train, val) with n_val hold-out samples spread over classes in proportion.

    y: (n_samples,) labels. Each class keeps at least one training sample.
    """
    labels, counts = np.unique(y, return_counts=True)
    # share_c = n_val · count_c / n, rounded by largest remainder so the shares sum to n_val
    exact = n_val * counts / counts.sum()
    take = np.floor(exact).astype(int)
    order = np.argsort(-(exact - take), kind="stable")
    take[order[: n_val - take.sum()]] += 1
    take = np.minimum(take, counts - 1)
    val = []
    for label, k in zip(labels, take, strict=True):
        members = np.flatnonzero(y == label)
        val.append(rng.permutation(members)[:k])
    val_idx = np.sort(np.concatenate(val)) if val else np.empty(0, int)
    mask = np.ones(len(y), bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx


def derive_seed(*keys: int) -> int:
    """A 32-bit seed determined by *keys* (base seed, stage, fold, ...)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def check_cv(y: np.ndarray, n_splits: int, option: str = "--cv") -> None:
    """UsageError unless 2 ≤ n_splits ≤ the smallest class count of labels y (n,)."""
    if n_splits < 2:
        raise UsageError(f"{option} must be at least 2, got {n_splits}", f"e.g. {option} 5")
    labels, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min())
    if n_splits > smallest:
        label = labels[int(np.argmin(counts))]
        raise UsageError(f"{option} {n_splits} is more than the {smallest} image(s) of class {label}",
                         f"use {option} {smallest} or fewer, or more training data" if smallest >= 2 else
                         "give every class 2 images or more: each of the stratified folds holds one of each")


def stratified_kfold(y: np.ndarray, n_splits: int, seed: int, option: str = "--cv") -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified K-fold: [(train_idx, test_idx)] with sorted int64 indices.

    Each class's samples are shuffled and dealt round-robin (continuing across classes),
    so per-class counts differ by at most one between folds, and so do fold sizes. *option*
    names the fold count in check_cv's message.
    """
    y = np.asarray(y)
    check_cv(y, n_splits, option)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])
    fold_of = np.empty(len(y), np.int64)
    fold_of[order] = np.arange(len(y)) % n_splits
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(n_splits)]
