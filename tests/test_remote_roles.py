"""From a peer's uid/gid to a role, over the real passwd and group databases."""

from __future__ import annotations

import grp
import pwd

import pytest

from console.common.api import Role
from console.config.schema import RoleRule
from console.remote.roles import RoleResolver, rules_from_config

NOBODY, NOGROUP = 65534, 65534
STATION_UID = 4242  # pretend the station runs as some service user
NO_ACCOUNT = 54321


def test_no_rules_only_the_station_user_and_root_are_operators() -> None:
    resolve = RoleResolver([], station_uid=STATION_UID)
    assert resolve(STATION_UID, 0).role is Role.OPERATOR
    assert resolve(0, 0).role is Role.OPERATOR
    refused = resolve(NOBODY, NOGROUP)
    assert refused.role is None
    assert "user nobody (uid 65534) may not attach" in refused.reason and "no roles are configured" in refused.reason


def test_user_rule_wins_over_group_rule() -> None:
    rules = [RoleRule(Role.OBSERVER, group="nogroup"), RoleRule(Role.OPERATOR, user="nobody")]
    d = RoleResolver(rules, station_uid=STATION_UID)(NOBODY, NOGROUP)
    assert d.role is Role.OPERATOR and d.who == "nobody@uid65534"


def test_group_rule_matches_the_peer_gid_and_the_primary_group() -> None:
    rules = [RoleRule(Role.OBSERVER, group="nogroup")]
    resolve = RoleResolver(rules, station_uid=STATION_UID)
    assert resolve(NOBODY, NOGROUP).role is Role.OBSERVER  # nobody's primary group
    assert resolve(NO_ACCOUNT, NOGROUP).role is Role.OBSERVER  # no account: only the connecting gid counts
    assert resolve(NO_ACCOUNT, 12345).role is None


def _member_of_a_secondary_group() -> tuple[int, int, str] | None:
    """Some account listed as a member of a group that is not its primary one."""
    for g in grp.getgrall():
        for member in g.gr_mem:
            try:
                pw = pwd.getpwnam(member)
            except KeyError:
                continue
            if pw.pw_gid != g.gr_gid:
                return pw.pw_uid, pw.pw_gid, g.gr_name
    return None


def test_supplementary_groups_count() -> None:
    found = _member_of_a_secondary_group()
    if found is None:
        pytest.skip("no account here has a supplementary group")
    uid, gid, group = found
    resolve = RoleResolver([RoleRule(Role.OBSERVER, group=group)], station_uid=STATION_UID)
    d = resolve(uid, gid)  # connects with its primary gid; the group comes from the group database
    assert d.role is Role.OBSERVER and f"in group {group}" in d.reason


def test_first_matching_group_rule_wins() -> None:
    rules = [RoleRule(Role.OBSERVER, group="nogroup"), RoleRule(Role.OPERATOR, group="nogroup")]
    assert RoleResolver(rules, station_uid=STATION_UID)(NOBODY, NOGROUP).role is Role.OBSERVER


def test_an_explicit_rule_can_make_the_station_user_an_observer_but_unmatched_it_stays_operator() -> None:
    rules = [RoleRule(Role.OBSERVER, user="root")]
    assert RoleResolver(rules, station_uid=0)(0, 0).role is Role.OBSERVER
    assert RoleResolver([RoleRule(Role.OBSERVER, user="nobody")], station_uid=0)(0, 0).role is Role.OPERATOR


def test_unmatched_users_are_refused_with_the_rules_named() -> None:
    rules = [RoleRule(Role.OBSERVER, group="clinic"), RoleRule(Role.OPERATOR, user="ana")]
    d = RoleResolver(rules, station_uid=STATION_UID)(NO_ACCOUNT, 12345)
    assert d.role is None and d.user == f"uid{NO_ACCOUNT}"
    assert "allowed: group clinic, user ana" in d.reason


def test_rules_from_the_config_and_other_shapes() -> None:
    got = rules_from_config(
        [
            RoleRule(role=Role.OBSERVER, group="clinic"),
            {"user": "ana", "role": "operator"},
            ("group", "techs", "operator"),
            ("@nurses", "observer"),
            ("bob", Role.OBSERVER),
        ]
    )
    assert got == [
        RoleRule(Role.OBSERVER, group="clinic"),
        RoleRule(Role.OPERATOR, user="ana"),
        RoleRule(Role.OPERATOR, group="techs"),
        RoleRule(Role.OBSERVER, group="nurses"),
        RoleRule(Role.OBSERVER, user="bob"),
    ]


@pytest.mark.parametrize(
    "bad",
    [{"user": "ana", "role": "admin"}, {"role": "observer"}, {"user": "a", "group": "b", "role": "observer"}, ("x",)],
)
def test_bad_rules_are_refused_with_the_rule_shown(bad: object) -> None:
    with pytest.raises(ValueError, match="role rule"):
        rules_from_config([bad])
