"""Issue 13, item 4 at the station's edge: what a console types is checked once, for every console.

Positions and LOP sources are words from fixed lists, a patient id is the records' pseudonym
everywhere (set_patient checked any printable text, the records and sessions a pattern), and a
refusal names what it was given with its control characters written out, in the audit trail too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.common.api import CommandRefused
from console.records.store import Records
from console.station.station import Station
from tests.station_support import make_config


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[tuple[Station, Records]]:
    records = Records.open(tmp_path / "var")
    st = Station(make_config(tmp_path, controllers=1), records=records, check_interval_s=None)
    await st.start()
    try:
        yield st, records
    finally:
        await st.stop()
        records.close()


def cuff(st: Station, cuff_id: str = "A1") -> object:
    return next(c for c in st.snapshot().cuffs if c.id == cuff_id)


@pytest.mark.parametrize(
    ("position", "source", "words"),
    [
        ("\x1b[2J\x1b]0;owned\x07", "doppler", "a body position is one of supine, seated, standing"),
        ("lying on the floor", "doppler", "a body position is one of"),
        ("seated", "guess\x1b[31m", "a LOP source is one of auto, doppler, manual"),
    ],
)
async def test_set_lop_takes_a_position_and_a_source_from_the_lists_only(
    station: tuple[Station, Records], position: str, source: str, words: str
) -> None:
    st, records = station
    with pytest.raises(CommandRefused, match=words):
        await st.set_lop("A1", 180, position=position, cuff_width_cm=11.5, source=source)
    assert cuff(st).lop is None, "nothing of it was kept"
    await st.set_lop("A1", 180, position="standing", cuff_width_cm=11.5, source="manual")
    assert cuff(st).lop == 180
    records.flush()
    refused = [c for c in records.commands() if c.what.endswith("(refused)")]
    assert refused and "\x1b" not in refused[0].what and "\x07" not in refused[0].what
    assert ("local", "operator", "set LOP of A1 to 180 mmHg (standing, manual)") in [
        (c.who, c.role, c.what) for c in records.commands()
    ]


@pytest.mark.parametrize("pid", ["John Smith", "P-1\x1b[2J", "x" * 65, "P/../1", "Ünïcode"])
async def test_set_patient_takes_the_same_pseudonym_the_records_take(
    station: tuple[Station, Records], pid: str
) -> None:
    st, _ = station
    with pytest.raises(CommandRefused, match="A patient id is a pseudonym of 1 to 64 letters, digits"):
        await st.set_patient("A1", pid)
    assert cuff(st).patient_id is None
    await st.set_patient("A1", " P-0042 ")
    assert cuff(st).patient_id == "P-0042"
    await st.set_patient("A1", "")
    assert cuff(st).patient_id is None, "an empty id clears it"


async def test_start_session_and_measure_lop_are_checked_before_the_engine_sees_them(
    station: tuple[Station, Records],
) -> None:
    st, records = station
    with pytest.raises(CommandRefused, match="A patient id is a pseudonym"):
        await st.start_session(["A1"], "tiny", "P\x1b[2J")
    with pytest.raises(CommandRefused, match="A body position is one of supine, seated, standing"):
        await st.measure_lop("A1", position="\x1b[2J")
    with pytest.raises(CommandRefused, match="not available yet"):  # no engine here: checked before it anyway
        await st.measure_lop("A1", position="supine")
    records.flush()
    whats = [c.what for c in records.commands()]
    assert any("start session 'tiny' on 'A1' for patient 'P\\x1b[2J'" in w for w in whats), whats
    assert not any("\x1b" in w for w in whats)
