"""SampleClock: sample times from the controller's stamps, immune to the station loop's stalls."""

from __future__ import annotations

from console.station.sample_clock import MAX_LAG_S, WRAP_MS, SampleClock


def test_a_stall_of_the_station_does_not_move_the_samples_it_delayed() -> None:
    clock = SampleClock()
    times = [clock.time_of(1000 + 10 * k, 5.0 + 0.010 * k + 0.001) for k in range(50)]  # 1 ms transit
    # the loop stalls 300 ms: the next 30 samples all arrive at once, then on time again
    burst = [clock.time_of(1500 + 10 * k, 5.8 + 0.001) for k in range(30)]
    after = [clock.time_of(1800 + 10 * k, 5.8 + 0.010 * k + 0.001) for k in range(10)]
    mapped = times + burst + after
    steps = [b - a for a, b in zip(mapped, mapped[1:])]
    assert all(abs(s - 0.010) < 5e-4 for s in steps), (
        "every sample 10 ms after the one before (within the drift allowance)"
    )
    assert all(t <= a for t, a in zip(burst, [5.801] * 30)), "never later than its arrival"


def test_the_least_delayed_sample_sets_the_offset() -> None:
    clock = SampleClock()
    first = clock.time_of(0, 10.050)  # arrived 50 ms late
    assert first == 10.050
    assert clock.time_of(10, 10.011) == 10.011  # on time: the offset moves to it
    assert abs(clock.time_of(20, 10.080) - 10.021) < 1e-4  # late again: its own time, not its arrival


def test_the_u32_wrap_is_not_a_restart() -> None:
    clock = SampleClock()
    a = clock.time_of(WRAP_MS - 10, 100.0)
    b = clock.time_of(0, 100.010)  # wrapped
    assert abs((b - a) - 0.010) < 1e-9


def test_a_restart_starts_again_from_the_arrival() -> None:
    clock = SampleClock()
    clock.time_of(500_000, 100.0)
    assert clock.time_of(40, 101.0) == 101.0  # uptime went back: a reboot


def test_a_clock_that_jumps_ahead_is_followed_not_lagged_forever() -> None:
    clock = SampleClock()
    clock.time_of(0, 0.0)
    late = clock.time_of(10, 0.010 + MAX_LAG_S + 1.0)  # the station clock jumped (a test's manual clock)
    assert late == 0.010 + MAX_LAG_S + 1.0
