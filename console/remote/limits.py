"""Bounds on what consoles may cost the station: connections, commands, and rows in the audit trail.

Why: any member of the socket's group may connect, as often as it likes, and send as fast as the
kernel carries. The station's own work (every sample checked, every screen fed, every emergency
carried out) must not depend on a console's good manners. Each bound here is a number with a
sentence: what is refused, and how the refusal is told and recorded without the refusals
themselves becoming the flood.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``burst`` actions at once, then ``rate`` a second."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.last is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def take(self, now: float) -> bool:
        """One action now: True if within the budget."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def spend(self, n: int, now: float) -> None:
        """``n`` actions that happen anyway (they may leave a debt, paid back at ``rate``)."""
        self._refill(now)
        self.tokens -= n

    def spent(self, now: float) -> bool:
        """Nothing left now."""
        self._refill(now)
        return self.tokens < 1.0

    def full(self, now: float) -> bool:
        """Back to its whole burst (it owes nothing): a table of buckets may forget it."""
        return self.last is None or self.tokens + (now - self.last) * self.rate >= self.burst


@dataclass
class RowThrottle:
    """Rows of the audit trail per key (a console, a uid): a burst, then a few a second.

    A row over the budget is not lost from the count: the next row written for the key says how
    many were left out before it, and :meth:`leftover` gives what is still untold (written when the
    console goes).
    """

    rate: float = 1.0
    burst: float = 20.0
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _untold: Counter[str] = field(default_factory=Counter)

    def admit(self, key: str, now: float) -> int | None:
        """None: do not write this row (counted). Else write it, noting the returned number left out before it."""
        bucket = self._buckets.setdefault(key, TokenBucket(self.rate, self.burst))
        if not bucket.take(now):
            self._untold[key] += 1
            return None
        return self._untold.pop(key, 0)

    def leftover(self, key: str) -> int:
        """Rows left out for ``key`` and not told yet; forgets the key."""
        self._buckets.pop(key, None)
        return self._untold.pop(key, 0)

    def forget_idle(self, now: float) -> None:
        """Drop buckets that are full again and owe nothing (a bound on the table itself)."""
        for key, bucket in list(self._buckets.items()):
            if key not in self._untold and bucket.full(now):
                del self._buckets[key]


@dataclass
class ConnectionCaps:
    """At most ``per_user`` connections per uid, ``total`` from all the others together, and new
    connections from one uid at ``per_s`` a second (bursts of ``burst``).

    The station's own user and root are never counted against ``total`` nor the rate (only against
    ``per_user``): however many connections others open, the kiosk and an administrator get in.
    """

    total: int = 32
    per_user: int = 4
    trusted: frozenset[int] = frozenset()
    per_s: float = 1.0
    burst: float = 5.0
    by_uid: Counter[int] = field(default_factory=Counter)
    _rates: dict[int, TokenBucket] = field(default_factory=dict)

    def admit(self, uid: int, now: float) -> str:
        """Count a new connection from ``uid``; "" if it may stay, else the sentence to refuse it with."""
        if self.by_uid[uid] >= self.per_user:
            return f"too many connections from this user (at most {self.per_user}); close one first"
        if uid not in self.trusted:
            if self.others() >= self.total:
                return f"the station has too many consoles attached (at most {self.total}); try again later"
            if not self._rates.setdefault(uid, TokenBucket(self.per_s, self.burst)).take(now):
                return f"connecting too often (more than {self.per_s:g} a second); wait a moment"
        self.by_uid[uid] += 1
        return ""

    def release(self, uid: int) -> None:
        self.by_uid[uid] -= 1
        if self.by_uid[uid] <= 0:
            del self.by_uid[uid]

    def forget_idle(self, now: float) -> None:
        """Drop the rate of users with no connection whose budget is full again (a bound on the table)."""
        for uid, bucket in list(self._rates.items()):
            if uid not in self.by_uid and bucket.full(now):
                del self._rates[uid]

    def others(self) -> int:
        return sum(n for uid, n in self.by_uid.items() if uid not in self.trusted)
