"""The fast peers (scikit-learn-intelex, JAX + optax, PyTorch), fitted in their own venv.

`make bench-peers` makes bench/.venv-peers with them, so mnistlr's own dependencies stay as
they are. Each fit is a child process of that venv's Python running bench/peer_fit.py on the
benchmark's arrays, passed as .npy files in a temporary folder; the child warms up, times one
fit and scores it. `contenders()` says which peers ran and which were absent.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from fits import Contender, Dataset

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-peers"
# peer name → (row label, modules it needs)
PEERS = {
    "sklearnex": ("sklearnex LogisticRegression (float32)", ("sklearnex",)),
    "jax": ("JAX + optax L-BFGS (jit)", ("jax", "optax")),
    "torch": ("PyTorch LBFGS", ("torch",)),
}


def python() -> Path | None:
    exe = VENV / "bin" / "python"
    return exe if exe.exists() else None


def installed() -> dict[str, bool]:
    """Which peers the peers' venv can import (all False without the venv)."""
    exe = python()
    if exe is None:
        return dict.fromkeys(PEERS, False)
    probe = ("import importlib.util, json, sys; "
             "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))")
    modules = sorted({m for _, needs in PEERS.values() for m in needs})
    found = json.loads(subprocess.run([str(exe), "-c", probe, *modules], capture_output=True, text=True,
                                      check=True).stdout)
    return {name: all(found[m] for m in needs) for name, (_, needs) in PEERS.items()}


class _Arrays:
    """The datasets' arrays as .npy files, written once per dataset into one temporary folder."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mnistlr-bench-peers-"))
        self.folders: dict[str, Path] = {}

    def folder(self, data: Dataset) -> Path:
        if data.name not in self.folders:
            folder = self.root / f"d{len(self.folders)}"
            folder.mkdir()
            for key, array in (("X_train", data.X_train), ("y_train", data.y_train),
                               ("X_test", data.X_test), ("y_test", data.y_test)):
                np.save(folder / f"{key}.npy", np.ascontiguousarray(array.reshape(len(array), -1)
                                                                     if array.ndim == 3 else array))
            self.folders[data.name] = folder
        return self.folders[data.name]

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


ARRAYS = _Arrays()


def _runner(peer: str, l2: float, tol: float, max_iter: int):
    def run(data: Dataset) -> dict:
        folder = ARRAYS.folder(data)
        out = folder / f"{peer}.json"
        done = subprocess.run([str(python()), str(HERE / "peer_fit.py"), peer, str(folder), repr(l2), repr(tol),
                               str(max_iter), str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"peer {peer} failed: {done.stderr.strip()[-800:]}")
        return json.loads(out.read_text())
    return run


def contenders(l2: float, tol: float, max_iter: int) -> tuple[list[Contender], list[str], list[str]]:
    """(the installed peers as contenders, names that ran, names absent)."""
    found = installed()
    ran = [n for n, ok in found.items() if ok]
    absent = [n for n, ok in found.items() if not ok]
    return ([Contender(PEERS[n][0], "softmax", False, fit=None, external=_runner(n, l2, tol, max_iter))
             for n in ran], [PEERS[n][0] for n in ran], [PEERS[n][0] for n in absent])
