"""`fetch`: download or import datasets into the data directory, and list them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from mnistlr.data.download import ProgressFn, Source, fetch_dataset, verify_file
from mnistlr.data.registry import dataset_dir, dataset_names, dataset_status, get_spec
from mnistlr.data.transfer import mirror_problem, server_text
from mnistlr.errors import UsageError


def _sources(local_dirs: Sequence[str], builtin: Sequence[str], mirrors: Sequence[str] | None,
             source: Path | None) -> list[Source]:
    """--source and --mirror replace the built-in sources; else local copies come first."""
    if source is not None or mirrors:
        return ([Path(source)] if source is not None else []) + list(mirrors or [])
    return [Path(d) for d in local_dirs if Path(d).is_dir()] + list(builtin)


MAX_TIMEOUT = 86_400.0  # one day


def _check_options(mirrors: Sequence[str] | None, source: Path | None,
                   timeout: float | None, retries: int) -> None:
    for url in mirrors or []:
        problem = mirror_problem(str(url))
        if problem is not None:
            raise UsageError(f"`mirror` {server_text(url)}: {problem}",
                             "give the http(s) base URL the file names are appended to, e.g. "
                             "https://example.org/mnist/; local files come in through `source` DIR")
    if source is not None and not Path(source).is_dir():
        raise UsageError(f"`source` {source}: not a directory",
                         "give the folder that holds the four .gz files")
    if timeout is not None and not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                                    and math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise UsageError(f"`timeout` {timeout}: not a number of seconds from 0.1 to {MAX_TIMEOUT:,.0f}",
                         "give e.g. `timeout=60`, or leave it out (30 s per read, 10 min per file)")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise UsageError(f"`retries` {retries}: not a whole number from 0 to 10")


def fetch(datasets: Sequence[str] = ("mnist",), data_dir: str | os.PathLike | None = None, *,
          mirrors: Sequence[str] | None = None, source: str | os.PathLike | None = None,
          force: bool = False, timeout: float | None = None, retries: int = 2,
          progress: ProgressFn | None = None) -> list[dict]:
    """Fetch each dataset into DATA_DIR/NAME/, verified; returns one dict per dataset.

    *mirrors* are http(s) base URLs; *timeout* bounds each read and each whole file from one
    source (None: 30 s per read, 10 minutes per file); each file is capped at its published
    size plus a margin.

    Each dict: {"name", "status": "fetched"|"present"|"bundled", "where", "files": [...]}.
    Unknown names and bad options raise UsageError before anything is fetched; a file that
    cannot be fetched and verified raises FetchError.
    """
    specs = [get_spec(name, data_dir) for name in dict.fromkeys(datasets or ["mnist"])]
    source = Path(source) if source is not None else None
    _check_options(mirrors, source, timeout, retries)
    results = []
    for spec in specs:
        if spec.bundled:
            results.append({"name": spec.name, "status": "bundled", "where": "bundled with mnistlr",
                            "files": [],
                            "message": "bundled with mnistlr; it needs no fetch"})
            continue
        if spec.imported:   # nothing to download, but files missing or changed are said, as train says them
            from mnistlr.data.imported import check_files

            check_files(spec, dataset_dir(spec.name, data_dir), tuple(spec.files))
            results.append({"name": spec.name, "status": "imported",
                            "where": str(dataset_dir(spec.name, data_dir)), "files": [],
                            "message": "imported with 'mnistlr import'; nothing to fetch"})
            continue
        sources = _sources(spec.local_dirs, spec.mirrors, mirrors, source)
        results.append(fetch_dataset(spec, dataset_dir(spec.name, data_dir), sources, force=force,
                                     timeout=timeout, retries=retries, progress=progress))
    return results


def list_datasets(data_dir: str | os.PathLike | None = None,
                  names: Sequence[str] | None = None) -> list[dict]:
    """The status of every registered dataset (or of *names*): present locally or not, and where.

    Files present in the data directory are checked against the published checksums (an MD5
    of a few tens of MB: fast): "failed" lists the ones that do not match (copied in by hand
    or damaged since), which `fetch` would get again.
    """
    statuses = [dataset_status(name, data_dir) for name in (names or dataset_names(data_dir))]
    for status in statuses:
        status["failed"] = [] if status["bundled"] else _failing_files(status, data_dir)
    return statuses


def import_data(name: str, train: str | os.PathLike, test: str | os.PathLike | None = None, *,
                train_labels: str | os.PathLike | None = None,
                test_labels: str | os.PathLike | None = None, force: bool = False,
                data_dir: str | os.PathLike | None = None) -> dict:
    """`mnistlr import`: convert *train* (and *test*; both splits of a Keras .npz) into the named
    dataset DATA_DIR/NAME/ (IDX files and a SHA-256 manifest); see `mnistlr.data.imported`."""
    from mnistlr.data.imported import import_dataset

    return import_dataset(name, train, test, train_labels=train_labels, test_labels=test_labels,
                          force=force, data_dir=data_dir)


def _failing_files(status: dict, data_dir: str | os.PathLike | None) -> list[str]:
    spec, folder = get_spec(status["name"], data_dir), Path(status["where"])
    return [f.name for key, f in spec.files.items()
            if status["files"][key]["present"] and verify_file(folder / f.name, f) is not None]
