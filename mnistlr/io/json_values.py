"""Values ready for strict JSON: the one converter every --json output and JSON file goes through."""

from __future__ import annotations

import math
from typing import Any


def json_ready(value: Any) -> Any:
    """NaN/inf → None and NumPy values → Python, recursively (strict JSON)."""
    import numpy as np

    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
