"""The board's one connection: subscribe to the site, hand every message to the model.

Read-only by construction: it subscribes and never publishes (a board account's ACL
allows only reading, too). Reconnects with a growing pause; the screen shows why it is
not connected meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import aiomqtt

from console.mqtt.board_model import BoardModel
from console.mqtt.topics import parse_url, site_filter

log = logging.getLogger(__name__)


class BoardFeed:
    def __init__(
        self,
        url: str,
        model: BoardModel,
        *,
        user: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        on_message: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host, self.port, self.tls = parse_url(url)
        self.url = url
        self.model = model
        self.user, self.password, self.ca_file = user, password, ca_file
        self.on_message = on_message
        self.clock = clock
        self.connected = False
        self.error = ""
        self.received = 0

    async def run(self) -> None:
        pause = 0.5
        while True:
            tls = ssl.create_default_context(cafile=self.ca_file) if self.tls else None
            try:
                async with aiomqtt.Client(
                    self.host, self.port, username=self.user, password=self.password, tls_context=tls, keepalive=10
                ) as client:
                    await client.subscribe(site_filter(self.model.site), qos=1)
                    self.connected, self.error, pause = True, "", 0.5
                    async for msg in client.messages:
                        payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                        self.model.apply(str(msg.topic), payload, self.clock())
                        self.received += 1
                        if self.on_message is not None:
                            self.on_message()
            except aiomqtt.MqttError as exc:
                self.error = str(exc)
                log.warning("board: broker %s: %s", self.url, exc)
            finally:
                self.connected = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)
