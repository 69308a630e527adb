"""L-BFGS for smooth problems without bounds, behind `scipy.optimize.minimize`'s interface.

Importing scipy.optimize costs ~0.35 s of CPU per process (it loads scipy.linalg, sparse,
linprog, ...): as much as a whole softmax fit on 22,699 images. The default L-BFGS path
needs none of it: `minimize` here runs the classic two-loop L-BFGS (Nocedal & Wright,
Algorithm 7.4) with a strong-Wolfe line search (Algorithms 3.5–3.6, cubic interpolation),
with L-BFGS-B's constants (sufficient decrease 1e-3, curvature 0.9, first step 1/‖g‖);
the curvature pairs are kept in float32 and the recursion is one Numba kernel (`kernels.two_loop`).
Calls with bounds (or another method) go to scipy.optimize.minimize unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

# L-BFGS-B's line-search constants (its dcsrch: ftol, gtol) and evaluations allowed per search
SUFFICIENT_DECREASE = 1e-3
CURVATURE = 0.9
LINE_SEARCH_EVALS = 20

STATUS_CONVERGED, STATUS_LIMIT, STATUS_LINE_SEARCH, STATUS_STOPPED = 0, 1, 2, 99


@dataclasses.dataclass
class Result:
    """The end of a run, with scipy's field names; status 0 converged, 1 maxiter/maxfun, 2 line
    search made no progress, 99 the callback raised StopIteration."""

    x: np.ndarray
    fun: float
    jac: np.ndarray
    status: int
    nit: int
    nfev: int
    message: str

    @property
    def success(self) -> bool:
        return self.status in (STATUS_CONVERGED, STATUS_STOPPED)


@dataclasses.dataclass
class Iterate:
    """What the callback sees after each iteration (scipy's `intermediate_result`)."""

    x: np.ndarray
    fun: float


def _unbounded(bounds) -> bool:
    if bounds is None:
        return True
    if hasattr(bounds, "lb"):   # a scipy.optimize.Bounds
        return bool(np.all(np.isneginf(bounds.lb)) and np.all(np.isposinf(bounds.ub)))
    return all((lo is None or lo == -np.inf) and (hi is None or hi == np.inf) for lo, hi in bounds)


def minimize(fun, x0, jac=True, method="L-BFGS-B", callback=None, bounds=None, options=None):
    """`scipy.optimize.minimize` for fun(x) → (f, ∇f); L-BFGS here when there are no bounds.

    options: maxcor (memory), maxiter, maxfun, gtol (stop when max|∇f| ≤ gtol), ftol (stop when
    the relative decrease of f in an iteration is ≤ ftol), as scipy's L-BFGS-B reads them.
    """
    if method != "L-BFGS-B" or jac is not True or not _unbounded(bounds):
        from scipy.optimize import minimize as scipy_minimize

        return scipy_minimize(fun, x0, jac=jac, method=method, callback=callback, bounds=bounds, options=options)
    o = options or {}
    return lbfgs(fun, x0, memory=int(o.get("maxcor", 10)), max_iter=int(o.get("maxiter", 15000)),
                 max_fun=int(o.get("maxfun", 15000)), gtol=float(o.get("gtol", 1e-5)),
                 ftol=float(o.get("ftol", 2.2e-9)), callback=callback)


# Pairs are kept in float32 (half the 80 MB a 50,010-weight direction reads with 50 pairs), their
# ρ and the recursion's sums in float64: the exact L-BFGS direction of the pairs as rounded.
PAIR_DTYPE = np.float32


class Pairs:
    """The last *memory* curvature pairs (s_i, y_i) as rows of two (memory, n) arrays, with ρ_i = 1/s_iᵀy_i."""

    def __init__(self, memory: int, n: int):
        self.S, self.Y = np.empty((memory, n), PAIR_DTYPE), np.empty((memory, n), PAIR_DTYPE)
        self.rho = np.zeros(memory)
        self.order: list[int] = []      # rows in use, oldest first

    def __len__(self) -> int:
        return len(self.order)

    def clear(self) -> None:
        self.order = []

    def add(self, s: np.ndarray, y: np.ndarray) -> None:
        """Keep the pair (s, y) when sᵀy > ε·yᵀy, the oldest dropped beyond the memory."""
        s, y = s.astype(PAIR_DTYPE, copy=False), y.astype(PAIR_DTYPE, copy=False)
        sy, yy = float(np.dot(s, y.astype(np.float64))), float(np.dot(y, y.astype(np.float64)))
        if not sy > np.finfo(float).eps * yy:
            return
        # rows fill 0, 1, … in order after a clear; once all are used the oldest one is reused
        row = self.order.pop(0) if len(self.order) == len(self.rho) else len(self.order)
        self.S[row], self.Y[row] = s, y
        # ρ = 1/sᵀy
        self.rho[row] = 1.0 / sy
        self.order.append(row)

    def direction(self, g: np.ndarray) -> np.ndarray:
        """d = −H g by the two-loop recursion over the stored pairs, H₀ = (sᵀy / yᵀy)·I (`kernels.two_loop`)."""
        from mnistlr.learn.kernels.two_loop import h_times

        return -h_times(g, self.S, self.Y, self.rho, np.array(self.order, dtype=np.int64))


def lbfgs(fun: Callable, x0, memory: int = 10, max_iter: int = 15000, max_fun: int = 15000,
          gtol: float = 1e-5, ftol: float = 2.2e-9, callback: Callable | None = None,
          pairs: Pairs | None = None, f0_slack: float = 0.0) -> Result:
    """Minimise fun(x) → (f, ∇f) from x0 (n,) by L-BFGS with *memory* pairs; see `minimize`.

    pairs: curvature pairs to start from (updated in place), e.g. those of a search on a
    subsample of the same objective's rows, whose curvature is nearly the full data's.
    f0_slack: how far fun(x0)'s f (exact, say) may lie from fun's rounding elsewhere; the first
    step must lower f by more than that to count.
    """
    x = np.array(x0, dtype=np.float64)
    f, g = _evaluate(fun, x)
    nfev, nit = 1, 0
    pairs = Pairs(memory, x.size) if pairs is None else pairs
    while True:
        if float(np.max(np.abs(g), initial=0.0)) <= gtol:
            return Result(x, f, g, STATUS_CONVERGED, nit, nfev, "max |gradient| ≤ gtol")
        d = pairs.direction(g)
        slope = float(g @ d)
        if not len(pairs) or slope >= 0:
            # steepest descent, first step 1/‖g‖ (as L-BFGS-B starts)
            pairs.clear()
            d, slope = -g, -float(g @ g)
        step = 1.0 if len(pairs) else 1.0 / np.sqrt(-slope)
        # the first step is measured against f(x0) − f0_slack
        reference = f - (f0_slack if nit == 0 else 0.0)
        found = _line_search(fun, x, reference, slope, d, step, min(LINE_SEARCH_EVALS, max_fun - nfev))
        nfev += found[-1]
        if found[0] is None:
            if len(pairs):      # forget the curvature pairs and try steepest descent once
                pairs.clear()
                continue
            status = STATUS_LIMIT if nfev >= max_fun else STATUS_LINE_SEARCH
            return Result(x, f, g, status, nit, nfev, "the line search found no lower point")
        x_new, f_new, g_new = found[0], found[1], found[2]
        pairs.add(x_new - x, g_new - g)
        f_old, x, f, g = f, x_new, f_new, g_new
        nit += 1
        if callback is not None:
            try:
                callback(Iterate(x, f))
            except StopIteration:
                return Result(x, f, g, STATUS_STOPPED, nit, nfev, "the callback raised StopIteration")
        # relative decrease (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return Result(x, f, g, STATUS_CONVERGED, nit, nfev, "relative reduction of f ≤ ftol")
        if nit >= max_iter or nfev >= max_fun:
            return Result(x, f, g, STATUS_LIMIT, nit, nfev, "maxiter or maxfun reached")


def _evaluate(fun, x) -> tuple[float, np.ndarray]:
    f, g = fun(x)
    return float(f), np.asarray(g, dtype=np.float64)


def _line_search(fun, x, f0: float, slope0: float, d, step: float, max_evals: int):
    """A step along d meeting the strong Wolfe conditions: (x + t·d, f, ∇f, evaluations).

    f(x + t d) ≤ f0 + c₁ t f0'  and  |∇f(x + t d)·d| ≤ c₂ |f0'|, c₁ = 1e-3, c₂ = 0.9. When no
    such step is found within *max_evals* evaluations, the lowest point of sufficient decrease
    seen, else (None, None, None, evaluations).
    """
    start = _Point(0.0, f0, slope0, x, None)
    previous, t = start, step
    for evals in range(1, max_evals + 1):
        point = _probe(fun, x, d, t)
        if not point.decreases(f0, slope0) or (evals > 1 and point.f >= previous.f):
            return _zoom(fun, x, d, f0, slope0, previous, point, max_evals - evals, evals)
        if abs(point.slope) <= -CURVATURE * slope0:
            return point.x, point.f, point.g, evals
        if point.slope >= 0:
            return _zoom(fun, x, d, f0, slope0, point, previous, max_evals - evals, evals)
        previous, t = point, 4.0 * t       # still going down steeply: a longer step
    return _fallback(previous, max_evals)


@dataclasses.dataclass
class _Point:
    """A trial step t: f(x + t d), its slope ∇f·d, the point and its gradient."""

    t: float
    f: float
    slope: float
    x: np.ndarray
    g: np.ndarray | None

    def decreases(self, f0: float, slope0: float) -> bool:
        # sufficient decrease: f(x + t d) ≤ f0 + c₁ t f0'
        return bool(np.isfinite(self.f)) and self.f <= f0 + SUFFICIENT_DECREASE * self.t * slope0


def _probe(fun, x, d, t: float) -> _Point:
    x_t = x + t * d
    f_t, g_t = _evaluate(fun, x_t)
    return _Point(t, f_t, float(g_t @ d) if np.isfinite(f_t) else np.nan, x_t, g_t)


def _zoom(fun, x, d, f0: float, slope0: float, lo: _Point, hi: _Point, evals_left: int, evals: int):
    """Nocedal & Wright's zoom: shrink [lo, hi] (lo: the lower end of sufficient decrease) to a Wolfe step."""
    for _ in range(evals_left):
        t = _interpolate(lo, hi)
        # the bracket has shrunk to rounding, relative to its own scale (steps ~1/‖g‖ may be tiny)
        if abs(t - lo.t) <= 1e-12 * max(abs(lo.t), abs(hi.t)):
            break
        point = _probe(fun, x, d, t)
        evals += 1
        if not point.decreases(f0, slope0) or point.f >= lo.f:
            hi = point
            continue
        if abs(point.slope) <= -CURVATURE * slope0:
            return point.x, point.f, point.g, evals
        if point.slope * (hi.t - lo.t) >= 0:
            hi = lo
        lo = point
    return _fallback(lo, evals)


def _fallback(best: _Point, evals: int):
    if best.t > 0 and best.g is not None:
        return best.x, best.f, best.g, evals
    return None, None, None, evals


def _interpolate(lo: _Point, hi: _Point) -> float:
    """The minimiser of the cubic through lo and hi (values and slopes), kept within the middle 80 %
    of [lo.t, hi.t]; bisection when hi is not finite or the cubic has no minimiser."""
    a, b = lo.t, hi.t
    t = None
    if np.isfinite(hi.f) and np.isfinite(hi.slope):
        # cubic interpolation (Nocedal & Wright (3.59))
        d1 = lo.slope + hi.slope - 3.0 * (lo.f - hi.f) / (a - b)
        disc = d1 * d1 - lo.slope * hi.slope
        if disc >= 0:
            d2 = np.copysign(np.sqrt(disc), b - a)
            denom = hi.slope - lo.slope + 2.0 * d2
            if denom != 0:
                t = b - (b - a) * (hi.slope + d2 - d1) / denom
    low, high = min(a, b), max(a, b)
    margin = 0.1 * (high - low)
    if t is None or not np.isfinite(t):
        return 0.5 * (a + b)
    return float(min(max(t, low + margin), high - margin))
