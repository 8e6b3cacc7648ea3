"""``[mqtt]``: off by default, every key checked, never a password in the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from console.app_runner import describe_config
from console.config.loader import dump_config, load_config, parse_config
from console.mqtt.topics import parse_topic, topic_name
from tests.test_config import MINIMAL, problem, refuse, write


def test_publishing_is_off_without_the_section(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).mqtt is None


def test_a_full_section_loads_and_round_trips(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[station]
name = "Bay A"

[mqtt]
url = "mqtts://broker.clinic.lan"
site = "north-clinic"
user = "bay-a"
password_file = "secrets/mqtt.pw"
ca_file = "/etc/bfr/clinic-ca.crt"
cuff_hz = 2
queue = 500
"""
    )
    config = load_config(write(tmp_path, text))
    m = config.mqtt
    assert m is not None
    assert (m.host, m.port, m.tls, m.site, m.user) == ("broker.clinic.lan", 8883, True, "north-clinic", "bay-a")
    assert m.password_file == tmp_path.resolve() / "secrets" / "mqtt.pw"
    assert (m.cuff_hz, m.queue) == (2.0, 500)
    again = parse_config(tomllib.loads(dump_config(config)), str(config.path), base_dir=config.path.parent)
    assert again.mqtt == m
    said = describe_config(config)
    assert "publishes to mqtts://broker.clinic.lan:8883 as bay-a under bfr/north-clinic/bay-a/" in said


def test_bad_values_are_refused_with_the_key(tmp_path: Path) -> None:
    err = refuse(
        tmp_path,
        MINIMAL
        + """
[mqtt]
url = "mqtt://user:pw@broker:1883"
site = "North Clinic"
password = "hunter2"
user = "bay-a"
cuff_hz = 5
ca_file = "ca.crt"
""",
    )
    assert "credentials" in problem(err, "mqtt.url")
    assert "topic level" in problem(err, "mqtt.site")
    assert "never write a password in the config" in problem(err, "mqtt.password")
    assert "password_file" in problem(err, "mqtt.password_file")
    assert "Hz" in problem(err, "mqtt.cuff_hz")
    assert "mqtts" in problem(err, "mqtt.ca_file")
    assert "hunter2" not in str(err)
    err = refuse(tmp_path, MINIMAL + '[mqtt]\nurl = "http://broker"\nsite = "c"\n')
    assert "mqtt://host:port" in problem(err, "mqtt.url")
    err = refuse(tmp_path, MINIMAL + '[station]\nname = "///"\n[mqtt]\nurl = "mqtt://b"\nsite = "c"\n')
    assert "MQTT topics" in problem(err, "station.name")


def test_a_station_name_never_reaches_another_stations_topics() -> None:
    assert topic_name("Bay A") == "bay-a"
    assert topic_name("bay-b/#/+ x") == "bay-b-x"
    assert topic_name("Salle 3 (rééducation)") == "salle-3-r-ducation"
    assert parse_topic("clinic", "bfr/clinic/bay-a/cuffs/A1").item == "A1"  # type: ignore[union-attr]
    assert parse_topic("clinic", "bfr/clinic/bay-a/cuffs/A1/x") is None
    assert parse_topic("clinic", "bfr/other/bay-a/status") is None
