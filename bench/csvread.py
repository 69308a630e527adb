"""One CSV read in a fresh process, for `make bench`: `python bench/csvread.py HOW PATH OUT [CACHE_DIR]`.

HOW: mnistlr (read_labelled, pandas' C parser), mnistlr-cached (the same through the content-keyed
cache in CACHE_DIR, which the caller filled once), pyarrow (pyarrow.csv.read_csv into one uint8
array: the other parser the issue names, as a peer). Writes one JSON object to OUT: seconds (wall),
cpu_seconds (user + system: the figure a shared machine's load disturbs least), the peak RSS before
and after the read (MiB) and the bytes of the uint8 images read. Start it through
`procs.run_child` (a small launcher), or it inherits its parent's peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def read_pyarrow(path: Path):
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pc

    with open(path, "rb") as handle:
        n_columns = handle.readline().count(b",") + 1
    names = [f"c{i}" for i in range(n_columns)]
    table = pc.read_csv(path, read_options=pc.ReadOptions(column_names=names),
                        convert_options=pc.ConvertOptions(column_types=dict.fromkeys(names, pa.uint8())))
    out = np.empty((table.num_rows, n_columns - 1), np.uint8)
    for i, column in enumerate(table.columns[1:]):
        out[:, i] = column.to_numpy()
    return out


def main(argv: list[str]) -> int:
    how, path, out = argv[0], Path(argv[1]), Path(argv[2])
    cache_dir = Path(argv[3]) if len(argv) > 3 else None
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401

    from mnistlr.io.labelled import read_labelled

    before = rss_mib()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    if how == "pyarrow":
        X = read_pyarrow(path)
    else:
        X, _ = read_labelled(path, cache_dir=cache_dir if how == "mnistlr-cached" else None)
        X = numpy.asarray(X)
        int(X[-1].sum())  # touch the pages of a memory-mapped result
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    out.write_text(json.dumps({"how": how, "seconds": seconds, "cpu_seconds": cpu, "rss_before_mib": before,
                               "rss_peak_mib": rss_mib(), "result_bytes": int(X.nbytes), "n": int(len(X))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
