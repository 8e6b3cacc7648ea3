"""Per-cuff live state: the 10-second trace at 10 points a second, occlusion time, % LOP."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.station.cuff import REPERFUSION_S, TRACE_POINTS, CuffSpec, CuffState


def make(lop: float | None = None) -> CuffState:
    return CuffState(
        CuffSpec(
            id="A1",
            controller="A",
            channel=1,
            limb="leg",
            label="left thigh",
            max_pct_lop=80.0,
            tolerance=15.0,
            occlusion_warn_s=600.0,
            occlusion_limit_s=900.0,
            lop=lop,
        )
    )


def test_trace_keeps_one_point_per_tenth_of_a_second_oldest_first() -> None:
    c = make()
    t = 100.0
    for i in range(300):  # 3 s at 100 Hz
        c.add_sample(float(i), t + i * 0.01, 20.0)
    trace = c.trace()
    assert len(trace) == 30
    assert trace[0] == 0.0 and trace[1] == 10.0 and trace[-1] == 290.0
    assert c.samples == 300 and c.pressure == 299.0 and c.last_sample_at == pytest.approx(t + 2.99)


def test_trace_is_a_ring_of_the_last_ten_seconds() -> None:
    c = make()
    for i in range(2500):  # 25 s at 100 Hz
        c.add_sample(float(i), 1000.0 + i * 0.01, 20.0)
    trace = c.trace()
    assert len(trace) == TRACE_POINTS == 100
    assert trace[0] == 1500.0 and trace[-1] == 2490.0
    assert list(trace) == sorted(trace)
    assert c.trace() is trace, "built once per new point"
    c.add_sample(5.0, 1000.0 + 2500 * 0.01, 20.0)
    assert c.trace() is not trace and c.trace()[-1] == 5.0 and len(c.trace()) == 100


def test_occlusion_time_counts_while_above_the_threshold_and_resets_below() -> None:
    c = make()
    c.add_sample(10.0, 0.0, 20.0)
    assert c.occlusion_s(5.0) == 0.0
    c.add_sample(25.0, 1.0, 20.0)
    c.add_sample(150.0, 2.0, 20.0)
    assert c.occlusion_s(61.0) == pytest.approx(60.0)
    c.add_sample(19.9, 62.0, 20.0)
    assert c.occlusion_s(100.0) == 0.0
    c.add_sample(30.0, 200.0, 20.0)
    assert c.occlusion_s(230.0) == pytest.approx(30.0), "a new episode starts from zero"


def test_percent_lop_and_allowed_target() -> None:
    c = make()
    assert c.pct_lop(100.0) is None
    assert c.allowed_max() == c.spec.max_mmhg_without_lop == 80.0, "no LOP: the no-LOP limit of its limb"
    c.lop = 200.0
    assert c.pct_lop(100.0) == pytest.approx(50.0)
    assert c.allowed_max() == pytest.approx(160.0)


def test_a_new_target_disarms_the_off_target_rule_until_reached() -> None:
    c = make()
    c.armed = True
    c.new_target(150.0, 10.0)
    assert c.target == 150.0 and not c.armed and c.target_set_at == 10.0
    c.armed = True
    c.new_target(150.0, 20.0)
    assert c.armed and c.target_set_at == 10.0, "the same target again changes nothing"


def test_snapshot_names_each_cuffs_pair_from_the_config() -> None:
    from console.config.loader import load_config
    from console.station.station import Station

    station = Station(load_config(Path(__file__).resolve().parents[1] / "config.toml"))
    pairs = {c.id: c.pair for c in station.snapshot().cuffs}
    assert pairs == {"A1": "A2", "A2": "A1", "B1": None, "B2": None}


# ------------------------------------------------------------ Safety review of the occlusion clock: one noisy sample is not a reperfusion.


def feed(c: CuffState, p: float, t0: float, t1: float, hz: float = 100.0) -> None:
    n = int(round((t1 - t0) * hz))
    for i in range(n):
        c.add_sample(p, t0 + i / hz, 20.0)


def test_a_one_sample_dip_below_the_threshold_does_not_restart_the_occlusion_clock() -> None:
    c = make(200.0)
    c.target = 60.0
    feed(c, 60.0, 0.0, 300.0)
    c.add_sample(19.0, 300.0, 20.0)  # a movement artefact, one sample long
    feed(c, 60.0, 300.01, 901.0)
    assert c.occlusion_s(901.0) == pytest.approx(901.0, abs=0.1), "the 15-minute limit would never be reached"


def test_a_real_release_restarts_it() -> None:
    """Target still set (a leak, a tube off): a release all the same once it lasts REPERFUSION_S."""
    c = make(200.0)
    c.target = 60.0
    feed(c, 60.0, 0.0, 300.0)
    feed(c, 5.0, 300.0, 300.0 + REPERFUSION_S + 1.0)
    assert c.occlusion_since is None and c.occlusion_s(304.0) == 0.0
    feed(c, 60.0, 310.0, 320.0)
    assert c.occlusion_s(320.0) == pytest.approx(10.0, abs=0.1)


def test_a_deliberate_vent_ends_the_episode_at_once() -> None:
    c = make(200.0)
    c.target = 60.0
    feed(c, 60.0, 0.0, 100.0)
    c.target = 0.0
    c.add_sample(15.0, 100.5, 20.0)
    assert c.occlusion_since is None and c.occlusion_s(100.5) == 0.0
