"""The topic tree every station publishes under and every board reads (a public interface: docs/mqtt.md).

``bfr/<site>/<station>/status``, ``.../cuffs/<cuff id>`` and ``.../alarms``. The station's
level is :func:`topic_name` of ``[station] name``, so ``Bay A`` publishes as ``bay-a``: the
broker's ACLs name it (``pattern write bfr/<site>/%u/#`` with the account ``bay-a``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

ROOT: Final = "bfr"
SCHEMES: Final = {"mqtt": (1883, False), "mqtts": (8883, True)}
"""URL scheme -> (default port, TLS)."""
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")
_LEVEL = re.compile(r"[a-z0-9_-]{1,64}\Z")


def topic_name(name: str) -> str:
    """A station or site name as one topic level: lower case, runs of anything else made ``-``.

    No ``/``, ``+``, ``#`` or space survives, so a name can never reach another station's topics.
    """
    return _NOT_NAME.sub("-", name.lower()).strip("-")[:64]


def valid_level(text: str) -> bool:
    """Whether ``text`` is already a topic level as :func:`topic_name` makes them."""
    return bool(_LEVEL.match(text)) and text.strip("-") == text


def station_prefix(site: str, station: str) -> str:
    return f"{ROOT}/{site}/{station}"


def status_topic(site: str, station: str) -> str:
    return f"{station_prefix(site, station)}/status"


def cuff_topic(site: str, station: str, cuff_id: str) -> str:
    """The cuff's id as written in the config: an id there has no ``/``, ``+``, ``#`` or space."""
    return f"{station_prefix(site, station)}/cuffs/{cuff_id}"


def alarms_topic(site: str, station: str) -> str:
    return f"{station_prefix(site, station)}/alarms"


def site_filter(site: str) -> str:
    """What a board subscribes to: everything of every station of the site."""
    return f"{ROOT}/{site}/#"


@dataclass(frozen=True, slots=True)
class Topic:
    """A received topic taken apart: ``kind`` is ``status``, ``cuffs`` or ``alarms``."""

    station: str
    kind: str
    item: str = ""


def parse_topic(site: str, topic: str) -> Topic | None:
    """The parts of one of our topics under ``site``, or None for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != site:
        return None
    station, kind = parts[2], parts[3]
    if kind in ("status", "alarms") and len(parts) == 4:
        return Topic(station, kind)
    if kind == "cuffs" and len(parts) == 5:
        return Topic(station, kind, parts[4])
    return None


def parse_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` -> (host, port, tls); ValueError says what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a broker URL ({exc})") from None
    if parts.scheme not in SCHEMES:
        raise ValueError("expected mqtt://host:port or mqtts://host:port")
    if not parts.hostname:
        raise ValueError("the URL names no host")
    if parts.username or parts.password:
        raise ValueError("no credentials in the URL: use user and password_file")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("expected only mqtt://host:port (no path or query)")
    default_port, tls = SCHEMES[parts.scheme]
    return parts.hostname, port or default_port, tls
