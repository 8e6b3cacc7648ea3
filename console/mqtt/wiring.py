"""Plugging the publisher into a running station (``run`` and ``serve``), or not.

Off unless the config has ``[mqtt]``. A password file that cannot be read leaves the
station running without publishing and says so on its consoles: the clinic board is
a convenience, the cuffs are not.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from console.config.schema import StationConfig
from console.mqtt.topics import topic_name

if TYPE_CHECKING:  # the MQTT client is imported only by a station that publishes
    from console.mqtt.publisher import MqttPublisher

log = logging.getLogger(__name__)


def attach_command(config: StationConfig) -> str:
    """What a supervisor types to attach to this station (the config's ``attach``, else from the hostname)."""
    assert config.mqtt is not None
    if config.mqtt.attach:
        return config.mqtt.attach
    return f"ssh -t {socket.gethostname()} bfr-console attach --config {config.path}"


def start_publisher(station: Any, config: StationConfig) -> MqttPublisher | None:
    """A started publisher for ``station``, or None when publishing is off."""
    cfg = config.mqtt
    if cfg is None:
        return None
    from console.mqtt.publisher import MqttPublisher, read_password

    try:
        password = read_password(cfg)
    except OSError as exc:
        line = f"Clinic board: not updated, cannot read mqtt.password_file ({exc.strerror or exc})"
        log.error("mqtt: %s", line)
        station.view.notices.append(lambda: line)
        return None
    pub = MqttPublisher(
        cfg,
        station=topic_name(config.station.name),
        snapshot=station.snapshot,
        add_observer=station.add_observer,
        password=password,
        attach=attach_command(config),
    )
    station.view.notices.append(pub.notice)
    pub.start()
    return pub


async def stop_publisher(pub: MqttPublisher | None) -> None:
    if pub is not None:
        await pub.stop()
