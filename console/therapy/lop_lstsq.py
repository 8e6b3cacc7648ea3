"""Small dense least squares for the LOP signal processing: pure Python, stdlib only.

Its own module so :mod:`console.therapy.lop_signal` keeps the signal processing
and stays readable; the plateaus are short (a few hundred samples, a dozen columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def invert(a: list[list[float]]) -> list[list[float]] | None:
    """Inverse of a small dense matrix (Gauss-Jordan, partial pivoting); None if singular."""
    n = len(a)
    m = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-12:
            return None
        m[col], m[piv] = m[piv], m[col]
        top = m[col]
        p = top[col]
        for c in range(2 * n):
            top[c] /= p
        for r in range(n):
            if r != col:
                f = m[r][col]
                if f:
                    row = m[r]
                    for c in range(col, 2 * n):
                        row[c] -= f * top[c]
    return [row[n:] for row in m]


def lstsq(columns: list[list[float]], y: Sequence[float]) -> tuple[list[float], list[list[float]]] | None:
    """Least squares: (coefficients, inverse of the normal matrix) or None when degenerate."""
    k = len(columns)
    ata = [[0.0] * k for _ in range(k)]
    for i in range(k):
        ci = columns[i]
        for j in range(i, k):
            s = math.fsum(a * b for a, b in zip(ci, columns[j]))
            ata[i][j] = ata[j][i] = s
    inv = invert(ata)
    if inv is None:
        return None
    aty = [math.fsum(a * b for a, b in zip(c, y)) for c in columns]
    coef = [math.fsum(inv[i][j] * aty[j] for j in range(k)) for i in range(k)]
    return coef, inv
