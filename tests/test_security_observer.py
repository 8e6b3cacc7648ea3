"""Issue 13 end to end: a real observer (user ``nobody``, another uid) against the real station.

The observer is a forked child that dropped to uid 65534 and speaks the socket's protocol with
plain blocking sockets. It tries every operator command, floods emergency deflates, and then tries
to hold the records' lock so the station cannot start again. The bar: it can watch and press the
emergency key, nothing more, and everything it did is on record, as an observer.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from console.common.api import Role
from console.config.schema import RoleRule
from console.records.schema import DB_NAME
from console.records.store import Records
from console.remote.commands import COMMANDS
from console.remote.server import StationServer
from console.station.station import Station
from tests.station_support import inflate_and_hold, make_config, wait_for
from tests.test_security_support import NOBODY, NOGROUP, as_user, holding, needs_root, shared_directory

pytestmark = needs_root

WHO = f"nobody@uid{NOBODY}"
FLOOD = 3000

OPERATOR_COMMANDS: dict[str, dict[str, Any]] = {
    "inflate": {"cuff_id": "A2", "mmhg": 80},
    "nudge_target": {"cuff_id": "A1", "delta_mmhg": 20},
    "deflate": {"cuff_id": "A1"},
    "acknowledge": {"alarm_id": None},
    "silence": {"seconds": 120},
    "set_lop": {"cuff_id": "A2", "lop": 180, "position": "seated", "cuff_width_cm": 11.5, "source": "doppler"},
    "measure_lop": {"cuff_id": "A2", "position": "seated"},
    "set_patient": {"cuff_id": "A2", "patient_id": "P-666"},
    "start_session": {"cuff_ids": ["A2"], "plan_id": "tiny", "patient_id": "P-666"},
    "session_command": {"cuff_id": "A1", "command": "stop"},
}


def test_the_list_is_every_operator_command() -> None:
    assert set(OPERATOR_COMMANDS) == {name for name, spec in COMMANDS.items() if not spec.observer_ok}


def observer_session(path: str, flood: int) -> dict[str, Any]:
    """As nobody: every operator command, then ``flood`` emergencies in one write; every answer."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile("rwb")
    hello = json.loads(f.readline())
    out = bytearray()
    names = {}
    for i, (name, args) in enumerate(OPERATOR_COMMANDS.items(), 1):
        names[i] = name
        out += json.dumps({"op": "cmd", "id": i, "name": name, "args": args}).encode() + b"\n"
    for i in range(1000, 1000 + flood):
        out += json.dumps({"op": "cmd", "id": i, "name": "emergency_deflate", "args": {}}).encode() + b"\n"
    f.write(bytes(out))
    f.flush()
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    while len(answers) < len(names) + flood and time.monotonic() < deadline:
        m = json.loads(f.readline())
        if m["op"] == "result":
            answers[m["id"]] = m
    s.close()
    refusals = {names[i]: answers.get(i, {}).get("error", "no answer") for i in names}
    emergencies_ok = sum(1 for i in range(1000, 1000 + flood) if answers.get(i, {}).get("ok") is True)
    return {"hello": hello, "refusals": refusals, "emergencies_ok": emergencies_ok}


def hold_the_lock(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return "held"


@pytest.fixture
def base() -> Iterator[Path]:
    with shared_directory() as shared:
        data = shared / "var"
        data.mkdir()
        os.chown(data, -1, NOGROUP)
        os.chmod(data, 0o2750)  # the old unit's StateDirectory: the supervisors' group may enter
        yield shared


@pytest.fixture
async def station(base: Path) -> AsyncIterator[tuple[Station, Records, StationServer]]:
    cfg = make_config(base, controllers=1)
    cfg = dataclasses.replace(
        cfg,
        station=dataclasses.replace(cfg.station, socket=base / "run" / "bfr.sock"),
        roles=(RoleRule(role=Role.OBSERVER, user="nobody"),),
    )
    records = Records.open(base / "var")
    st = Station(cfg, records=records)
    await st.start()
    server = StationServer(st, cfg.station.socket, cfg.roles, group=NOGROUP)
    await server.start()
    try:
        yield st, records, server
    finally:
        await server.stop()
        await st.stop()
        records.close()


async def test_an_observer_watches_and_deflates_and_nothing_more_and_all_of_it_is_on_record(
    station: tuple[Station, Records, StationServer], base: Path
) -> None:
    st, records, server = station
    await inflate_and_hold(st, "A1", 100)
    fw = st.emulators["A"].firmware
    got = await _as_nobody(observer_session, str(base / "run" / "bfr.sock"), FLOOD)
    assert got["hello"]["role"] == "observer"

    # every operator command refused with the sentence, none reached the station
    for name, error in got["refusals"].items():
        assert "nobody is an observer here" in error, (name, error)
    cuff = {c.id: c for c in st.snapshot().cuffs}
    assert cuff["A2"].patient_id is None and cuff["A2"].lop is None and cuff["A2"].lop_measure is None
    assert fw.channel(2).target == 0

    # every emergency answered as carried out; the first went out, the flood was merged into it
    assert got["emergencies_ok"] == FLOOD
    await wait_for(lambda: fw.channel(1).target == 0 and fw.channel(1).state == "VENTED", "A1 vented", 15)
    assert 1 <= server.emergencies.started <= 3, server.emergencies.started
    assert server.emergencies.started + server.emergencies.merged == FLOOD

    # all of it on record, as an observer (the last joined row comes when the emergency's hold ends)
    await wait_for(lambda: any(c.what.startswith("detach") for c in records.commands()), "the detach row", 15)
    await wait_for(lambda: joined_total(records) == server.emergencies.merged, "every joined request told", 15)
    mine = [c for c in records.commands() if c.who == WHO]
    assert {c.role for c in mine} == {"observer"}, "an observer's actions are stored as an observer's"
    whats = [c.what for c in mine]
    assert whats[0] == _starts(whats, "attach (pid ")
    refused = [w for w in whats if "(refused: observer)" in w]
    assert {w.split(" ", 1)[0] for w in refused} == set(OPERATOR_COMMANDS)
    started = [w for w in whats if w == "EMERGENCY DEFLATE ALL"]
    assert len(started) == server.emergencies.started
    assert len([w for w in whats if w.startswith("EMERGENCY DEFLATE ALL (")]) <= 4 * server.emergencies.started
    assert len(records.emergencies()) == server.emergencies.started, "one durable emergency row each, not thousands"
    assert all(e.by == WHO for e in records.emergencies())
    assert sum(w.startswith("detach (pid ") for w in whats) == 1


def joined_total(records: Records) -> int:
    """Requests the joined rows account for (``once`` or ``N times``)."""
    rows = [c.what for c in records.commands() if c.who == WHO and c.what.startswith("EMERGENCY DEFLATE ALL (")]
    return sum(1 if "(once;" in w else int(w.split("(")[1].split()[0]) for w in rows)


def _starts(whats: list[str], prefix: str) -> str:
    return next(w for w in whats if w.startswith(prefix))


async def _as_nobody(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(as_user, NOBODY, NOGROUP, fn, *args)


async def test_an_observer_cannot_hold_the_records_lock_to_keep_the_station_from_starting(base: Path) -> None:
    with Records.open(base / "var") as rec:  # a station ran here once
        rec.add_patient("P-1", at=1.0)
    lock = base / "var" / (DB_NAME + ".lock")
    with holding(NOBODY, NOGROUP, lambda: hold_the_lock(str(lock))) as said:
        assert said.startswith("PermissionError"), f"the observer could open the lock: {said}"
        with Records.open(base / "var") as rec:  # the station starts again
            assert [p.id for p in rec.patients()] == ["P-1"]
