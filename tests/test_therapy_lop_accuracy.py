"""A whole automatic LOP measurement on two emulated limbs at once, through the real station.

Real time: about 55 s (lower LOPs than the shipped config keep it short). The limbs' pulse ends steeply
(sqrt fade) and stands well out of the noise, and the measurement has its own default budget (56 s), so
it answers for most limbs; the tolerance is loose on purpose (lop.py's accuracy is benchmarked in
bench/bench_lop.py): the point here is the plumbing - zero, stepping, venting, the LOP and its bracket set
and recorded.

The budget is the production one on purpose. Cut to 40 s to save time, the measurement has fewer plateaus
to narrow what may hide above the bracket, and refuses (correctly, "fades too gently") far more often:
on these two limbs, simulated with bench.bench_lop's in-process rig at 100 Hz, 12/20 and 7/20 answered
at 40 s against 29/30 and 28/30 at 56 s (seeds 1000 and 3000, 2026-12-02). A CI run saw all three
attempts refused on both limbs with the 40 s budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.emulator.limb import LimbModel
from tests.station_support import cuff, wait_for
from tests.therapy_support import Rig, real_rig, vented_at_emulator

TRUE_LOPS = (125.0, 140.0)
TOLERANCE = 15.0
ATTEMPTS = 3
"""The pulse is timed by the controller's own sample stamps (console.station.sample_clock), so the
station loop's stalls on a loaded machine no longer blur it; further attempts on the same rig are left
for a measurement that refuses, correctly, on a bad moment (movement, noise). A measurement that
never works still fails the test, naming why each attempt refused. Two attempts were not enough once
in about ten runs of the suite on a slow 2-core machine (2026-12-02; the refusals were not recorded then)."""


async def measure_both(rig: Rig, refusals: list[str]) -> dict[str, float]:
    """Both cuffs measured at once, every ending checked; the LOPs that came out, by cuff (why the others
    refused goes into ``refusals``)."""
    st = rig.station
    await st.measure_lop("A1", position="seated")
    await st.measure_lop("A2", position="supine")
    progress = [cuff(st, c).lop_measure for c in ("A1", "A2")]
    assert all(p is not None and p.state == "running" for p in progress)
    peaks = {1: 0.0, 2: 0.0}
    fw = rig.fw("A")

    def done() -> bool:
        for ch in (1, 2):
            peaks[ch] = max(peaks[ch], fw.channel(ch).target)
        return all(cuff(st, c).lop_measure.state in ("done", "failed") for c in ("A1", "A2"))

    await wait_for(
        done,
        "both measurements ended",
        75,
        seen=lambda: "; ".join(f"{c}: {cuff(st, c).lop_measure}" for c in ("A1", "A2")),
    )
    await vented_at_emulator(rig, "A", 1)
    await vented_at_emulator(rig, "A", 2)
    assert max(peaks.values()) <= 300.0
    assert st.supervisor.measuring == set()
    assert not [a for a in st.snapshot().alarms], "stepping raised no alarm"
    results = {}
    for cid, true in zip(("A1", "A2"), TRUE_LOPS):
        p = cuff(st, cid).lop_measure
        if p.state == "failed":
            assert p.message and p.lop is None and cuff(st, cid).lop is None, "a clean failure"
            refusals.append(f"{cid}: {p.message}")
            continue
        assert p.lop is not None and abs(p.lop - true) <= TOLERANCE, (cid, p, true)
        assert p.bracket_low is not None and p.bracket_high is not None and p.resolution is not None
        assert p.bracket_low <= p.lop <= p.bracket_high
        assert 0.0 < (p.confidence or 0) <= 1.0
        assert cuff(st, cid).lop == p.lop, "the LOP is set on the cuff"
        assert st.cuffs[cid].lop_source == "auto"
        results[cid] = p.lop
    return results


@pytest.mark.timeout(360)
async def test_two_cuffs_measured_at_once_end_vented_with_their_lop_set_and_recorded(tmp_path: Path) -> None:
    rig = await real_rig(tmp_path, lops=TRUE_LOPS, pulse_mmhg=4.0)
    st = rig.station
    for chan in rig.fw("A")._chans:  # noqa: SLF001 - the config has no fade option (yet)
        chan.phys.limb = LimbModel(fade="sqrt")
    try:
        await st.set_patient("A1", "P-010")
        results: dict[str, float] = {}
        refusals: list[str] = []
        for _attempt in range(ATTEMPTS):
            results = await measure_both(rig, refusals)
            if results:
                break
        assert results, f"at least one of two clean limbs gave a LOP; refused: {refusals}"
        if "A1" in results:
            (rec,) = rig.records.lops("P-010")
            assert rec.lop_mmhg == results["A1"] and rec.source == "auto" and rec.position == "seated"
            assert rec.cuff_width_cm is None and rec.confidence is not None and rec.label == "cuff A1"
        if "A2" in results:
            (rec,) = rig.records.lops("unassigned")
            assert rec.cuff_id == "A2" and rec.position == "supine" and rec.lop_mmhg == results["A2"]
    finally:
        await rig.close()
