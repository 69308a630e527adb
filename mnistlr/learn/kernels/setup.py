"""Numba set-up: the cache-folder fallback, then `njit`, `prange` and `prefetch` for every kernel module.

Kernel modules take `njit` and `prange` (and the cache hint `prefetch`) from here, so the
fallback runs before Numba compiles.
"""

from __future__ import annotations

import os


def _writable(path: str) -> bool:
    """True when *path*, or the nearest folder above it that exists, can be written to."""
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return os.access(path, os.W_OK)


def numba_cache_fallback(env, package_cache: str, home: str, tmpdir: str, uid: int, writable=_writable) -> str | None:
    """The NUMBA_CACHE_DIR to set, or None to leave Numba's own choice alone.

    Numba caches next to the module (package_cache, i.e. mnistlr/__pycache__) or else in
    $XDG_CACHE_HOME (default ~/.cache); with neither writable `@njit(cache=True)` fails at
    import. Then (and when env sets no NUMBA_CACHE_DIR) use tmpdir/mnistlr-numba-<uid>.
    """
    if env.get("NUMBA_CACHE_DIR"):
        return None
    user_cache = env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    if writable(package_cache) or writable(user_cache):
        return None
    return os.path.join(tmpdir, f"mnistlr-numba-{uid}")


def _set_numba_cache_dir() -> None:
    import tempfile

    getuid = getattr(os, "getuid", None)
    chosen = numba_cache_fallback(os.environ, os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__"),
                                  os.path.expanduser("~"), tempfile.gettempdir(), getuid() if getuid else 0)
    if chosen is not None:
        os.environ["NUMBA_CACHE_DIR"] = chosen


_set_numba_cache_dir()

from numba import njit, prange  # noqa: E402


def _refresh_without_scipy_blas() -> None:
    """Load Numba's implementations now, with its probe of scipy.linalg.cython_blas answered "absent".

    The first kernel load refreshes Numba's CPU target, whose numba.np.arraymath imports
    scipy.linalg.cython_blas (so all of scipy.linalg, ~0.2 s) only to pick a BLAS inner product for
    np.dot of two vectors (then a plain loop; mnistlr's kernels call no np.dot). A matrix product
    still imports SciPy's BLAS when Numba compiles one. Nothing happens when either module is
    already loaded.
    """
    import sys

    from numba.core.registry import cpu_target

    probe = "scipy.linalg.cython_blas"
    if probe in sys.modules or "numba.np.arraymath" in sys.modules:
        return
    sys.modules[probe] = None          # None in sys.modules: `import` raises ImportError
    try:
        cpu_target.target_context.refresh()
    finally:
        if probe in sys.modules and sys.modules[probe] is None:
            del sys.modules[probe]


_refresh_without_scipy_blas()


def _prefetch_typer(typingctx, array, index):
    """`prefetch(a, i)`: ask for the cache line holding a[i] of a C-contiguous 1-D array (a hint: no load, never a fault)."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils

    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        name = "llvm.prefetch.p0" if _opaque_pointers() else "llvm.prefetch.p0i8"
        hint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [address.type] + [i32] * 3), name)
        builder.call(hint, [address, i32(0), i32(2), i32(1)])   # read, keep in L2 and below, data cache
        return context.get_dummy_value()

    return types.void(array, types.intp), codegen


def _opaque_pointers() -> bool:
    """LLVM 15 and later name the prefetch intrinsic by the opaque pointer type."""
    import llvmlite.binding as llvm

    return llvm.llvm_version_info[0] >= 15


from numba.extending import intrinsic  # noqa: E402

prefetch = intrinsic(_prefetch_typer)

__all__ = ["njit", "prange", "numba_cache_fallback", "prefetch", "set_num_threads", "vector_registers"]


def set_num_threads(n_threads: int) -> None:
    """Let Numba's parallel kernels use *n_threads* threads (clipped to 1..NUMBA_NUM_THREADS)."""
    import numba

    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))


def vector_registers() -> int:
    """Vector registers of the CPU Numba compiles for: 32 with AVX-512 (avx512f), else 16.

    Numba targets the host CPU unless NUMBA_CPU_NAME says otherwise (then its features are
    NUMBA_CPU_FEATURES, or that CPU's own: taken as 16 registers, the safe reading).
    """
    from numba.core import config

    if config.CPU_FEATURES:
        features = config.CPU_FEATURES
    elif config.CPU_NAME:
        return 16
    else:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    return 32 if "+avx512f" in features.split(",") else 16


IMPORTED = True   # the last line: `threads.numba_ready` reads it as "this import has finished"
