"""The layers import one way: io ← data, learn, evaluation ← tuning ← api ← cli (errors anywhere).

Checked on the source with `ast`, lazy imports inside functions included; a deliberate violation
in a temporary tree shows the check can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mnistlr

# Rank of each subpackage: a module may import its own rank or lower. Within a rank, siblings
# may import each other, as long as the package graph has no cycle.
RANKS = {"errors": 0, "io": 1, "data": 2, "learn": 2, "evaluation": 2, "tuning": 3, "api": 4,
         "cli": 5, "sklearn": 5, "__init__": 6, "__main__": 6}
# The package's own face may be read for its version from anywhere.
ALLOWED = {("mnistlr", "__version__")}


def _group(module: str) -> str | None:
    """'mnistlr.learn.fit' → 'learn'; 'mnistlr' itself → '__init__'; non-project → None."""
    parts = module.split(".")
    if parts[0] != "mnistlr":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, package: str) -> list[tuple[str, int]]:
    """(imported mnistlr module, line) for every import in *path*, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against the module's package
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).rstrip(".")
            names = [alias.name for alias in node.names]
            if base == "mnistlr":
                found += [(f"mnistlr.{n}", node.lineno) for n in names if ("mnistlr", n) not in ALLOWED]
            else:
                found.append((base, node.lineno))
    return [(module, line) for module, line in found if _group(module) is not None]


def violations(root: Path) -> list[str]:
    """Every import in the mnistlr tree under *root* that runs up the layers, or a package cycle."""
    problems, edges = [], set()
    for path in sorted((root / "mnistlr").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts)
        group = parts[1] if len(parts) > 2 else parts[-1]
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for target, line in imports(path, package):
            target_group = _group(target)
            if target_group not in RANKS or group not in RANKS:
                problems.append(f"{module}:{line} imports {target}: a module outside the known layers")
            elif RANKS[target_group] > RANKS[group]:
                problems.append(f"{module}:{line} imports {target}, a higher layer ({target_group} above {group})")
            elif target_group != group:
                edges.add((group, target_group))
    problems += [f"packages {a} and {b} import each other" for a, b in edges if (b, a) in edges and a < b]
    return problems


def test_no_import_runs_up_the_layers():
    assert violations(Path(mnistlr.__file__).parent.parent) == []


@pytest.mark.parametrize("bad, expected", [
    ("from mnistlr.cli.base import app\n", "higher layer (cli above io)"),
    ("def lazy():\n    import mnistlr.api.train\n", "higher layer (api above io)"),
    ("from mnistlr import tuning\n", "higher layer (tuning above io)"),
])
def test_the_check_sees_a_deliberate_violation(tmp_path, bad, expected):
    package = tmp_path / "mnistlr"
    for sub in ("io", "cli", "api", "tuning"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "io" / "tmp_violation.py").write_text(bad)
    (package / "cli" / "ok.py").write_text("from mnistlr.io import tmp_violation\n")
    found = violations(tmp_path)
    assert len(found) == 1 and expected in found[0] and "tmp_violation" in found[0]


def test_the_check_sees_a_cycle_between_siblings(tmp_path):
    package = tmp_path / "mnistlr"
    for sub in ("data", "learn"):
        (package / sub).mkdir(parents=True)
        (package / sub / "__init__.py").write_text("")
    (package / "data" / "a.py").write_text("from mnistlr.learn import b\n")
    (package / "learn" / "b.py").write_text("def f():\n    from mnistlr.data import a\n")
    assert violations(tmp_path) == ["packages data and learn import each other"]
