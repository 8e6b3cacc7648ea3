"""A real Mosquitto for the MQTT tests: its own config in tmp_path, on a free port, never the system's.

No tests in here. :func:`mosquitto_binary` finds the broker on PATH or in /usr/sbin (where
Debian puts it); when it is missing the tests FAIL naming it, unless BFR_ALLOW_NO_MOSQUITTO=1
says this machine may go without (then they are skipped, with the reason in the summary).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

START_TIMEOUT_S = 30.0
"""A loaded 2-core machine can take a while to start a process: generous, it is a deadline, not a wait."""


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    why = "the MQTT tests need the Mosquitto broker: `mosquitto` is not on PATH nor in /usr/sbin (apt-get install mosquitto)"
    if os.environ.get("BFR_ALLOW_NO_MOSQUITTO") == "1":
        pytest.skip(f"SKIPPED LOUDLY: {why}; BFR_ALLOW_NO_MOSQUITTO=1 allowed it")
    pytest.fail(why + "; set BFR_ALLOW_NO_MOSQUITTO=1 to skip these tests instead", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One Mosquitto process: start, stop (SIGTERM), start again on the same port."""

    def __init__(
        self, tmp_path: Path, *, users: dict[str, str] | None = None, acl: str | None = None, persist: bool = False
    ) -> None:
        self.binary = mosquitto_binary()
        self.dir = tmp_path / "mosquitto"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        lines = [f"listener {self.port} 127.0.0.1", "user root", f"log_dest file {self.dir / 'log'}"]
        # persist: sessions and their queued QoS 1 messages outlive a restart (saved at SIGTERM)
        lines += ["persistence true", f"persistence_location {self.dir}/"] if persist else ["persistence false"]
        if users is not None:
            pw = self.dir / "passwd"
            pw.write_text("")
            passwd = Path(self.binary).with_name("mosquitto_passwd")
            tool = str(passwd) if passwd.exists() else shutil.which("mosquitto_passwd") or "mosquitto_passwd"
            for user, password in users.items():
                subprocess.run([tool, "-b", str(pw), user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            (self.dir / "acl").write_text(acl)
            lines.append(f"acl_file {self.dir / 'acl'}")
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {out}{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"mosquitto did not listen on {self.port} in {START_TIMEOUT_S} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused broker cannot act on SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: a broker that hangs (accepts nothing, answers nothing) with every connection open."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        p = self.dir / "log"
        return p.read_text(errors="replace") if p.exists() else ""


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Listener:
    """A subscriber that keeps every (topic, JSON payload, retained) it gets, for the tests to wait on."""

    def __init__(self, port: int, topic: str, **login: Any) -> None:
        self.port, self.topic, self.login = port, topic, login
        self.got: list[tuple[str, Any, bool]] = []
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), START_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        import json

        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, **self.login) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for msg in client.messages:
                        self.got.append((str(msg.topic), json.loads(bytes(msg.payload)), bool(msg.retain)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def matching(self, pred: Callable[[str, Any], bool]) -> list[tuple[str, Any, bool]]:
        return [m for m in self.got if pred(m[0], m[1])]

    def seen(self) -> str:
        return "; ".join(f"{t} {p}" for t, p, _ in self.got[-8:])
