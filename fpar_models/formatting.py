"""Numbers as the reports write them, in one place: the presets' table (GET /presets,
docs/models.md), the experiments' tables and the pictures that label their points.
Torch-free."""
from __future__ import annotations

from typing import Any


def format_number(x: float) -> str:
    """As the reports write numbers: 1e-4, 2.5e-4, 0.5, 45."""
    if x and abs(x) < 0.01:
        mantissa, exponent = f"{x:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{x:g}"


def format_value(value: Any) -> str:
    """A grid value as the reports print it: numbers as format_number, milestones as '45 90'."""
    if isinstance(value, list):
        return " ".join(format_value(v) for v in value)
    return format_number(value) if isinstance(value, float) else str(value)
