"""The station's publisher: snapshots and alarm events out to the clinic's broker.

A collaborator of the station, fed by what every console reads (the snapshot, at
``cuff_hz``) and by the station's observer events (alarms and emergencies, at once). It
never makes the station wait: the observer only encodes and appends to the
:class:`~console.mqtt.outbox.Outbox`, and one task of its own talks to the broker,
reconnecting with a growing pause when the broker is down, slow or refuses the login.
What could not go out is counted and shown as a line of the station's snapshot.
The broker never sends this station anything: it subscribes to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from console.common.api import StationSnapshot
from console.config.schema import MqttConfig
from console.mqtt import payloads as pl
from console.mqtt.outbox import Outbox
from console.mqtt.topics import alarms_topic, cuff_topic, status_topic
from console.station.events import Observer, StationEvent

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
PUBLISH_TIMEOUT_S = 10.0
"""A QoS 1 publish not confirmed in this long ends the connection (the broker is too slow); it is resent."""
GOODBYE_TIMEOUT_S = 2.0
"""At stop, how long the last status (``offline``, ``stopped``) may take before the station goes anyway."""
STATUS_REFRESH_S = 30.0
"""The status goes out when it changes, and at least this often (its time shows it is alive)."""


class MqttPublisher:
    """Publishes one station under ``bfr/<site>/<station>/``.

    Args:
        cfg: the ``[mqtt]`` section.
        station: the station's topic level (:func:`console.mqtt.topics.topic_name` of its name).
        snapshot: the station's snapshot (read at ``cfg.cuff_hz``).
        add_observer: the station's observer registration (alarm and emergency events).
        password: read from ``cfg.password_file`` by the caller.
        attach: the SSH command the board shows for this station.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        station: str,
        snapshot: Callable[[], StationSnapshot],
        add_observer: Callable[[Observer], Callable[[], None]],
        password: str | None = None,
        attach: str = "",
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.cfg = cfg
        self.station = station
        self._snapshot = snapshot
        self._add_observer = add_observer
        self._password = password
        self.attach = attach
        self.retry_max_s = retry_max_s
        self.outbox = Outbox(cfg.queue)
        self.connected = False
        self.connects = 0
        self.error = ""
        """Why the last connection failed or ended ("" while none did)."""
        self._seq = 0
        self._name = ""
        self._status: bytes | None = None
        self._status_key: Any = None
        self._status_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._stopping = False

    # ------------------------------------------------------------------ the station's side

    def start(self) -> None:
        """Listen to the station and start the feed and the broker tasks (returns at once)."""
        self._unsubscribe = self._add_observer(self._on_event)
        self._name = self._snapshot().name  # the last will names the station from the first connection on
        self._tasks = [
            asyncio.create_task(self._feed(), name="mqtt:feed"),
            asyncio.create_task(self._connect_loop(), name="mqtt:broker"),
        ]

    async def stop(self) -> None:
        """Send what alarms wait, then ``offline`` (``stopped``), within GOODBYE_TIMEOUT_S if the broker is there.

        The goodbye goes out from the sending task itself, after the waiting alarms and
        before anything else: no state published after it can make the station look online.
        """
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stopping = True
        if self._tasks:
            self._tasks[0].cancel()  # no more snapshots
            self.outbox.wake.set()
            if self.connected:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._tasks[1]), GOODBYE_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # a hung broker's disconnect may wait 10 s: never longer than this on the way out
            await asyncio.wait(self._tasks, timeout=GOODBYE_TIMEOUT_S)

    def notice(self) -> str:
        """The line consoles show: empty while every message reaches the broker."""
        o = self.outbox
        lost = ""
        if o.dropped or o.lost_alarms:
            lost = f"; {o.lost_alarms} alarm messages lost, {o.dropped} updates dropped"
        if not self.connected and self.error:
            return f"Clinic board: broker {self.error}{lost}"
        if o.lost_alarms:
            return f"Clinic board missed alarms{lost}"
        return ""

    @property
    def _status_topic(self) -> str:
        return status_topic(self.cfg.site, self.station)

    def _on_event(self, event: StationEvent) -> None:
        """The observer: alarms and emergencies are queued at once (cheap: encode and append)."""
        payload: dict[str, Any] | None = None
        if event.kind == "alarm" and event.alarm is not None:
            self._seq += 1
            payload = pl.alarm_payload(event.action, event.alarm, station=self.station, seq=self._seq, time=event.time)
        elif event.kind == "emergency" and event.emergency is not None:
            self._seq += 1
            payload = pl.emergency_payload(event.emergency, station=self.station, seq=self._seq, time=event.time)
        if payload is not None:
            self.outbox.put_alarm(alarms_topic(self.cfg.site, self.station), pl.encode(payload))

    async def _feed(self) -> None:
        period = 1.0 / self.cfg.cuff_hz
        while True:
            try:
                self.feed_once()
            except Exception:
                log.exception("mqtt: could not build the messages of a snapshot")
            await asyncio.sleep(period)

    def feed_once(self) -> None:
        """Queue every cuff's state, and the status when it changed (or is due)."""
        snap = self._snapshot()
        self._name = snap.name
        o = self.outbox
        for c in snap.cuffs:
            o.put_latest(
                cuff_topic(self.cfg.site, self.station, c.id),
                pl.encode(pl.cuff_payload(c, station=self.station, time=snap.time)),
            )
        status = pl.status_payload(
            snap,
            station=self.station,
            state=pl.ONLINE,
            attach=self.attach,
            dropped=o.dropped,
            lost_alarms=o.lost_alarms,
        )
        key = {k: v for k, v in status.items() if k not in ("time", "dropped")}
        now = time.monotonic()
        if key != self._status_key or now - self._status_at >= STATUS_REFRESH_S:
            self._status_key, self._status_at = key, now
            self._status = pl.encode(status)
            o.put_latest(self._status_topic, self._status, retain=True)

    # ------------------------------------------------------------------ the broker's side

    def _client_for(self) -> aiomqtt.Client:
        cfg = self.cfg
        will = pl.offline_payload(self.station, self._name, time.time(), "vanished", self.attach)
        tls = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None) if cfg.tls else None
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.user,
            password=self._password,
            identifier=f"bfr-{cfg.site}-{self.station}",
            will=aiomqtt.Will(self._status_topic, pl.encode(will), qos=1, retain=True),
            tls_context=tls,
            timeout=PUBLISH_TIMEOUT_S,
            keepalive=10,
            max_queued_outgoing_messages=cfg.queue,
            max_queued_incoming_messages=1,  # it subscribes to nothing: a broker that pushes anyway costs no memory
            logger=log,
        )

    async def _connect_loop(self) -> None:
        pause = RETRY_MIN_S
        while True:
            try:
                async with self._client_for() as client:
                    self.connected, self.error = True, ""
                    self.connects += 1
                    pause = RETRY_MIN_S
                    log.info("mqtt: connected to %s:%s", self.cfg.host, self.cfg.port)
                    await self._send(client)
            except aiomqtt.MqttError as exc:
                self.error = _why(exc)
                log.warning("mqtt: broker %s:%s: %s", self.cfg.host, self.cfg.port, self.error)
            except Exception as exc:  # never let publishing die for good: log it and try again
                self.error = f"failed ({exc!r})"
                log.exception("mqtt: publishing failed; trying again")
            finally:
                self.connected = False
            if self._stopping:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.retry_max_s)

    async def _send(self, client: aiomqtt.Client) -> None:
        """The status first (at every connection too), then alarms in order, then cuff states."""
        o = self.outbox
        if self._status is not None:
            await client.publish(self._status_topic, self._status, qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S)
            o.latest.pop(self._status_topic, None)
        while True:
            o.wake.clear()
            # A status is built from a snapshot taken before the alarm events waiting now: sent after
            # them, it would take a just-raised alarm off a board until the next status.
            status = o.latest.pop(self._status_topic, None)
            if status is not None and not self._stopping:
                await client.publish(self._status_topic, status[0], qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S)
                o.sent += 1
            while o.alarms:
                topic, payload = o.alarms[0]
                await client.publish(topic, payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
                if o.alarms and o.alarms[0][1] is payload:
                    o.alarms.popleft()
                o.sent += 1
            if self._stopping:
                bye = pl.offline_payload(self.station, self._name, time.time(), "stopped", self.attach)
                await client.publish(self._status_topic, pl.encode(bye), qos=1, retain=True, timeout=GOODBYE_TIMEOUT_S)
                return
            item = o.next_latest()
            if item is not None:
                topic, payload, retain = item
                await client.publish(topic, payload, qos=1 if retain else 0, retain=retain, timeout=PUBLISH_TIMEOUT_S)
                o.sent += 1
                continue
            await o.wake.wait()


def _why(exc: aiomqtt.MqttError) -> str:
    """Half a sentence for the notice: a refused login reads differently from a broker that is not there."""
    if isinstance(exc, MqttConnectError):
        return f"refused the connection ({exc})"
    return f"unreachable ({exc})"


def read_password(cfg: MqttConfig) -> str | None:
    """The first line of ``password_file``; OSError when it cannot be read."""
    if cfg.password_file is None:
        return None
    with open(cfg.password_file, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n")
