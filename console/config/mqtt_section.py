"""``[mqtt]``: where the station publishes, checked like every other section.

A password is never in the config: ``password_file`` names a file (readable by the
station's account only) whose first line is read at start. The station's topic level
comes from ``[station] name`` (:func:`console.mqtt.topics.topic_name`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from console.config.schema import MqttConfig
from console.mqtt.topics import parse_url, topic_name, valid_level
from console.therapy.table_reader import TableReader, describe

MQTT_KEYS: Final = ("url", "site", "user", "password_file", "password", "ca_file", "cuff_hz", "queue", "attach")


def read_mqtt(data: Mapping[str, Any], problems: list[str], base: Path, station_name: str) -> MqttConfig | None:
    before = len(problems)
    t = TableReader(data, "mqtt", MQTT_KEYS, problems)
    if "password" in data:
        t.problem("password", "never write a password in the config: put it in a file and name it in password_file")
    url = t.text("url")
    host, port, tls = "", 0, False
    if url is not None:
        try:
            host, port, tls = parse_url(url)
        except ValueError as exc:
            t.problem("url", f"{exc}, found {describe(url)}")
    site = t.text("site")
    if site is not None and not valid_level(site):
        t.problem("site", f"expected lower-case letters, digits, '-' or '_' (a topic level), found {describe(site)}")
    if not topic_name(station_name):
        problems.append(f"station.name: {station_name!r} has no letter or digit to name the station's MQTT topics")
    user = t.text("user", None)
    pw_file = t.text("password_file", None)
    if user is not None and pw_file is None:
        t.problem("password_file", "missing (a user needs a password_file)")
    ca_file = t.text("ca_file", None)
    if ca_file is not None and url is not None and not tls:
        t.problem("ca_file", "only for mqtts:// (TLS) URLs")
    hz = t.number("cuff_hz", 1.0, lo=1.0, hi=2.0, unit="Hz")
    queue = t.integer("queue", 1000, lo=10, hi=100_000)
    attach = t.text("attach", "")
    if len(problems) > before:
        return None  # the whole config is refused anyway
    return MqttConfig(
        host=host,
        port=port,
        tls=tls,
        site=site,
        user=user,
        password_file=(base / Path(pw_file).expanduser()) if pw_file else None,
        ca_file=(base / Path(ca_file).expanduser()) if ca_file else None,
        cuff_hz=hz,
        queue=queue,
        attach=attach or "",
    )


def mqtt_table(m: MqttConfig) -> dict[str, Any]:
    """The ``[mqtt]`` table as a config file writes it (for ``dump_config``)."""
    out: dict[str, Any] = {"url": f"{'mqtts' if m.tls else 'mqtt'}://{m.host}:{m.port}", "site": m.site}
    for key in ("user", "password_file", "ca_file"):
        value = getattr(m, key)
        if value is not None:
            out[key] = str(value)
    out["cuff_hz"] = m.cuff_hz
    out["queue"] = m.queue
    if m.attach:
        out["attach"] = m.attach
    return out
