"""Argument checks for the records' write methods: a bad value is refused with its name, before it is queued.

Why: a write is queued and committed later on another thread, so a bad value must
fail here, in the caller, with a :class:`RecordsError` that says which argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

from console.common.facts import LIMBS
from console.records.rows import MAX_LOP_MMHG, RecordsError, SessionCuffRecord


def finite(
    name: str, value: float | None, *, optional: bool = False, low: float | None = None, high: float | None = None
) -> float | None:
    """``value`` as a float within [low, high]; None only when ``optional``."""
    if value is None:
        if optional:
            return None
        raise RecordsError(f"{name} is required")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecordsError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise RecordsError(f"{name} must be finite, got {value!r}")
    if low is not None and v < low:
        raise RecordsError(f"{name} must be at least {low:g}, got {v:g}")
    if high is not None and v > high:
        raise RecordsError(f"{name} must be at most {high:g}, got {v:g}")
    return v


def need(name: str, value: float | None, **kw: Any) -> float:
    v = finite(name, value, **kw)
    assert v is not None
    return v


def text(name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise RecordsError(f"{name} must be a non-empty string, got {value!r}")
    return value


def one_of(name: str, value: object, allowed: Sequence[str]) -> str:
    # Accept str-valued enums (api.Priority, api.Role) as their value.
    given = value.value if isinstance(value, Enum) else value
    if given not in allowed:
        raise RecordsError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(given)


def session_cuff_row(x: SessionCuffRecord, cuff_ids: Sequence[str]) -> tuple[Any, ...]:
    """A session cuff's row, checked like every other write."""
    if not isinstance(x, SessionCuffRecord) or x.cuff_id not in cuff_ids:
        raise RecordsError(f"per_cuff rows must be SessionCuffRecord of the session's cuffs, got {x!r}")
    return (
        x.cuff_id,
        text("label", x.label),
        one_of("limb", x.limb, LIMBS),
        need("target_mmhg", x.target_mmhg, low=0.0, high=MAX_LOP_MMHG),
        finite("lop_mmhg", x.lop_mmhg, optional=True, low=1.0, high=MAX_LOP_MMHG),
        None if x.lop_id is None else int(x.lop_id),
        None if x.position is None else text("position", x.position),
        finite("cuff_width_cm", x.cuff_width_cm, optional=True, low=1.0, high=60.0),
        finite("tolerance_mmhg", x.tolerance_mmhg, optional=True, low=0.0, high=MAX_LOP_MMHG),
    )
