"""The therapy's records writes (console.therapy.record_keeping.SafeRecords) follow the station's records object.

It checks the object against RecordsPort once (a Protocol's isinstance is slow and sessions write 160
rows a second), so these make sure a replaced object is checked again: records that appear, vanish or
are swapped for another file are used, or not, as they are now.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from console.records.store import Records
from console.therapy.record_keeping import SafeRecords


def test_records_are_checked_again_when_the_station_s_object_changes(tmp_path: Path) -> None:
    station: Any = SimpleNamespace(records=None)
    safe = SafeRecords(station)
    assert not safe.enabled, "no records: nothing is written"
    station.records = object()  # not records at all
    assert not safe.enabled
    first = Records.open(tmp_path / "one")
    second = Records.open(tmp_path / "two")
    try:
        station.records = first
        assert safe.enabled
        safe.add_patient("P-1", at=1_800_000_000.0)
        station.records = second
        safe.add_patient("P-2", at=1_800_000_000.0)
        assert [p.id for p in first.patients()] == ["P-1"], "a write went to the records no longer used"
        assert [p.id for p in second.patients()] == ["P-2"]
        station.records = None
        assert not safe.enabled, "records gone: the old object is still written to"
        safe.add_patient("P-3", at=1_800_000_000.0)  # logged nowhere, raises nothing
        assert [p.id for p in second.patients()] == ["P-2"]
    finally:
        first.close()
        second.close()
