"""Pure helpers of the benchmark: Markdown tables, ratios, target checks, the machine's description.

Nothing here times anything, so tests/test_bench.py can check it on made-up numbers.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

DASH = "—"


@dataclasses.dataclass
class FitResult:
    """One contender on one dataset: every fit's wall seconds and the fitted model's test scores.

    family: "softmax" or "ridge" (the mnistlr row a peer is compared with);
    log_loss is None for classifiers without probabilities.
    """

    dataset: str
    name: str
    family: str
    is_mnistlr: bool
    seconds: list[float]
    accuracy: float
    log_loss: float | None
    note: str = ""
    core_seconds: float | None = None    # mnistlr: preprocessing + solver part of the best fit
    cpu_seconds: float | None = None     # process CPU time (all threads) of the best fit
    objective: float | None = None       # training objective where rows share one (fits.training_objective)

    @property
    def best(self) -> float:
        return min(self.seconds)


def fmt_seconds(value: float | None) -> str:
    """Seconds with 3 significant digits (0.0123, 1.23, 123)."""
    if value is None or not math.isfinite(value):
        return DASH
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.2g}"


def fmt_count(value: float | None) -> str:
    """A large count with thousands separators (1,234,567)."""
    return DASH if value is None else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    """A speed ratio: 12.3×, 1.05×."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


def fmt_fraction(value: float | None, digits: int = 4) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                   align: str | None = None) -> str:
    """A GitHub Markdown table; *align* holds one of 'l'/'r' per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers) or any(len(r) != len(headers) for r in rows):
        raise ValueError("every row and the alignment need one entry per header")
    cells = [[str(h) for h in headers]] + [[str(c).replace("|", "\\|") for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if a == "r" else ":" + "-" * (w - 1) for w, a in zip(widths, align, strict=True)]
    return "\n".join([line(cells[0]), "| " + " | ".join(rule) + " |", *(line(r) for r in cells[1:])])


def reference_for(results: Sequence[FitResult], peer: FitResult) -> FitResult | None:
    """The mnistlr result of the peer's family on the same dataset."""
    return next((r for r in results if r.is_mnistlr and r.family == peer.family
                 and r.dataset == peer.dataset), None)


def speed_ratio(results: Sequence[FitResult], row: FitResult) -> float | None:
    """Peer best seconds / mnistlr best seconds (same family, same dataset); 1 for mnistlr itself."""
    ref = reference_for(results, row)
    if ref is None or ref.best <= 0:
        return None
    return row.best / ref.best


def fit_table(results: Sequence[FitResult]) -> str:
    """The headline table: one row per contender and dataset."""
    headers = ["dataset", "contender", "fit s (best)", "runs", "CPU s", "of which solver s",
               "test accuracy", "test log-loss", "peer ÷ mnistlr"]
    rows = []
    for r in results:
        ratio = speed_ratio(results, r)
        name = f"**{r.name}**" if r.is_mnistlr else r.name
        rows.append([r.dataset, name + (f" ({r.note})" if r.note else ""), fmt_seconds(r.best),
                     str(len(r.seconds)), fmt_seconds(r.cpu_seconds), fmt_seconds(r.core_seconds),
                     fmt_fraction(r.accuracy), fmt_fraction(r.log_loss),
                     "ref" if r.is_mnistlr else fmt_ratio(ratio)])
    return markdown_table(headers, rows, "llrrrrrrr")


@dataclasses.dataclass
class Check:
    """One target: what was asked, what was measured, and whether it was met (None: not measured)."""

    target: str
    measured: str
    ok: bool | None


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[ok]


def fit_checks(results: Sequence[FitResult], peer_name: str, family: str, min_ratio: float,
               accuracy_slack: float = 0.0, check_loss: bool = True) -> list[Check]:
    """Per dataset: mnistlr *family* vs *peer_name*: ≥ min_ratio× faster, accuracy within slack, loss no higher."""
    checks = []
    for peer in (r for r in results if r.name == peer_name):
        ref = reference_for(results, peer)
        if ref is None:
            continue
        ratio = peer.best / ref.best
        d_acc = ref.accuracy - peer.accuracy
        ok = ratio >= min_ratio and d_acc >= -accuracy_slack
        parts = [f"time ratio {fmt_ratio(ratio)}", f"accuracy {ref.accuracy:.4f} vs {peer.accuracy:.4f}"]
        if check_loss and ref.log_loss is not None and peer.log_loss is not None:
            ok = ok and ref.log_loss <= peer.log_loss
            parts.append(f"log-loss {ref.log_loss:.4f} vs {peer.log_loss:.4f}")
        if ref.objective is not None and peer.objective is not None:   # shown, not judged
            parts.append(f"training objective {ref.objective:.5f} vs {peer.objective:.5f}")
        checks.append(Check(f"{ref.name} ≥{min_ratio:g}× {peer_name} ({peer.dataset})", ", ".join(parts), ok))
    return checks


def threshold_check(target: str, value: float | None, limit: float, unit: str,
                    higher_is_better: bool = False) -> Check:
    """A figure against a limit ("under 0.3 s", "at least 1,000,000 images/s")."""
    if value is None:
        return Check(target, DASH, None)
    ok = value >= limit if higher_is_better else value < limit
    shown = fmt_count(value) if value >= 1000 else fmt_seconds(value)
    return Check(target, f"{shown} {unit}", ok)


def checks_table(checks: Sequence[Check]) -> str:
    return markdown_table(["target", "measured", "verdict"],
                          [[c.target, c.measured, verdict(c.ok)] for c in checks], "lll")


def key_value_table(pairs: Sequence[tuple[str, str]], headers: tuple[str, str] = ("figure", "value"),
                    align: str = "lr") -> str:
    return markdown_table(list(headers), [list(p) for p in pairs], align)


# ---------------------------------------------------------------------------- the machine


def cpu_model(cpuinfo: str) -> str:
    """The CPU's model name from /proc/cpuinfo text, with its vector extensions."""
    name, flags = "unknown CPU", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name == "unknown CPU":
            name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    vector = [f for f in ("avx512f", "avx2", "fma") if f in flags]
    return name + (f" ({', '.join(vector)})" if vector else "")


def memory_gib(meminfo: str) -> float | None:
    """MemTotal in GiB from /proc/meminfo text."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 ** 2
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def blas_description() -> str:
    """The BLAS libraries NumPy/SciPy use, with their thread counts (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    seen = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        text = (f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')}, "
                f"{lib.get('num_threads')} threads) via {Path(lib.get('filepath', '')).name}")
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) or "none found"


def machine_info() -> list[tuple[str, str]]:
    """The machine's description as (what, value) pairs."""
    import numba
    import numpy
    import scipy
    import sklearn

    mem = memory_gib(_read("/proc/meminfo"))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return [
        ("CPU", cpu_model(_read("/proc/cpuinfo"))),
        ("cores available", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else os.cpu_count())),
        ("memory", DASH if mem is None else f"{mem:.1f} GiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
        ("NumPy / SciPy / Numba / scikit-learn",
         f"{numpy.__version__} / {scipy.__version__} / {numba.__version__} / {sklearn.__version__}"),
        ("BLAS", blas_description()),
        ("Numba threads", str(numba.config.NUMBA_NUM_THREADS)),
        ("load average at start", DASH if load is None else " ".join(f"{x:.2f}" for x in load)),
    ]
