"""Safety review of the occlusion clock: one noisy sample is not a reperfusion."""

from __future__ import annotations

import pytest

from console.station.cuff import REPERFUSION_S, CuffSpec, CuffState


def make() -> CuffState:
    return CuffState(
        CuffSpec(
            id="A1",
            controller="A",
            channel=1,
            limb="leg",
            label="A1",
            max_pct_lop=80.0,
            tolerance=15.0,
            occlusion_warn_s=600.0,
            occlusion_limit_s=900.0,
            lop=200.0,
        )
    )


def feed(c: CuffState, p: float, t0: float, t1: float, hz: float = 100.0) -> None:
    n = int(round((t1 - t0) * hz))
    for i in range(n):
        c.add_sample(p, t0 + i / hz, 20.0)


def test_a_one_sample_dip_below_the_threshold_does_not_restart_the_occlusion_clock() -> None:
    c = make()
    c.target = 60.0
    feed(c, 60.0, 0.0, 300.0)
    c.add_sample(19.0, 300.0, 20.0)  # a movement artefact, one sample long
    feed(c, 60.0, 300.01, 901.0)
    assert c.occlusion_s(901.0) == pytest.approx(901.0, abs=0.1), "the 15-minute limit would never be reached"


def test_a_real_release_restarts_it() -> None:
    """Target still set (a leak, a tube off): a release all the same once it lasts REPERFUSION_S."""
    c = make()
    c.target = 60.0
    feed(c, 60.0, 0.0, 300.0)
    feed(c, 5.0, 300.0, 300.0 + REPERFUSION_S + 1.0)
    assert c.occlusion_since is None and c.occlusion_s(304.0) == 0.0
    feed(c, 60.0, 310.0, 320.0)
    assert c.occlusion_s(320.0) == pytest.approx(10.0, abs=0.1)


def test_a_deliberate_vent_ends_the_episode_at_once() -> None:
    c = make()
    c.target = 60.0
    feed(c, 60.0, 0.0, 100.0)
    c.target = 0.0
    c.add_sample(15.0, 100.5, 20.0)
    assert c.occlusion_since is None and c.occlusion_s(100.5) == 0.0
