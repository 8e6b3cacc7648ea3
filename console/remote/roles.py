"""Who may attach to the station, and as what: from the peer's uid to a role.

The login is the authentication (SSH, or the kiosk's own user); the kernel
tells the server the peer's uid and gid (``SO_PEERCRED``); this module turns
them into a :class:`Decision` using the config's rules.

The rule, in order:

1. A rule naming the user (by login name) decides; the first such rule wins.
2. Else the station's own uid and root are operators: they can stop the
   station or read its records anyway, so refusing them protects nothing and
   would lock the kiosk out of its own station. A group rule never demotes
   them (the station's user is usually in the supervisors' group, and a rule
   meant for supervisors must not turn the kiosk into an observer); only a rule
   naming them does.
3. Else a rule naming a group the user is in (primary group, supplementary
   groups, or the gid the peer connected with) decides; the first such rule in
   config order wins.
4. Else the peer is refused, with no rules configured and with rules alike.

So with no rules configured only the station's user and root may attach.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from console.common.api import Role
from console.config.schema import RoleRule


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one peer: a role, or ``None`` and the reason it was refused."""

    uid: int
    user: str
    role: Role | None
    reason: str

    @property
    def who(self) -> str:
        """How the station's record names this peer."""
        return f"{self.user}@uid{self.uid}"


Resolver = Callable[[int, int], Decision]
"""``(uid, gid) -> Decision``; the server takes any such callable (tests inject one)."""


def rules_from_config(entries: Iterable[Any]) -> list[RoleRule]:
    """Read role rules from the config's shape, whatever it is.

    Accepts :class:`RoleRule`, objects or dicts with ``role`` and ``user`` or
    ``group``, and ``(kind, name, role)`` or ``(name, role)`` tuples (a name
    written ``@group`` or ``group:NAME`` is a group).
    """
    rules: list[RoleRule] = []
    for entry in entries:
        if isinstance(entry, RoleRule):
            rules.append(entry)
            continue
        if isinstance(entry, dict):
            user, group, role = entry.get("user"), entry.get("group"), entry.get("role")
        elif isinstance(entry, tuple):
            if len(entry) == 3:
                kind, name, role = entry
                user, group = (name, None) if kind == "user" else (None, name)
            elif len(entry) == 2:
                name, role = entry
                user, group = _split_name(str(name))
            else:
                raise ValueError(f"role rule {entry!r}: expected (user|group, name, role)")
        else:
            user, group, role = (getattr(entry, k, None) for k in ("user", "group", "role"))
        try:
            rules.append(RoleRule(role=Role(role), user=user or None, group=group or None))
        except ValueError as exc:
            raise ValueError(f"role rule {entry!r}: {exc}") from None
    return rules


def _split_name(name: str) -> tuple[str | None, str | None]:
    if name.startswith("@"):
        return None, name[1:]
    if name.startswith("group:"):
        return None, name[6:]
    if name.startswith("user:"):
        return name[5:], None
    return name, None


class RoleResolver:
    """The rule above, over the system's user and group databases."""

    def __init__(self, rules: Sequence[RoleRule], *, station_uid: int | None = None) -> None:
        self.rules = list(rules)
        self.station_uid = os.getuid() if station_uid is None else station_uid

    @property
    def uses_groups(self) -> bool:
        return any(r.group is not None for r in self.rules)

    def __call__(self, uid: int, gid: int) -> Decision:
        user, groups = _identity(uid, gid)
        for rule in self.rules:
            if rule.user is not None and rule.user == user:
                return Decision(uid, user, rule.role, f"user {user} is {rule.role.value}")
        if uid == self.station_uid or uid == 0:
            return Decision(uid, user, Role.OPERATOR, f"{user} runs the station: operator")
        for rule in self.rules:
            if rule.group is not None and rule.group in groups:
                return Decision(uid, user, rule.role, f"{user} is in group {rule.group}: {rule.role.value}")
        if self.rules:
            allowed = ", ".join(r.describe() for r in self.rules)
            reason = f"user {user} (uid {uid}) may not attach to this station; allowed: {allowed}"
        else:
            reason = (
                f"user {user} (uid {uid}) may not attach to this station: no roles are configured, "
                "so only the station's own user may; add a [[roles]] entry to the station's config"
            )
        return Decision(uid, user, None, reason)


def _identity(uid: int, gid: int) -> tuple[str, set[str]]:
    """Login name and every group name of a uid (``uid1234`` if it has no passwd entry)."""
    gids = {gid}
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        user = f"uid{uid}"
    else:
        user = entry.pw_name
        gids.add(entry.pw_gid)
        try:
            gids.update(os.getgrouplist(user, entry.pw_gid))
        except OSError:
            pass
    names: set[str] = set()
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            pass
    return user, names
