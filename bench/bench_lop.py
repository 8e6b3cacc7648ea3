"""Benchmark the automatic LOP measurement on a simulated population of limbs.

Each limb is one emulated controller channel (``drivers.emulator.firmware``),
run in-process on a manual clock: the measurement's actions go to the firmware
as framed CUFF-LINK/1 commands, the firmware's ``S`` lines come back through the
codec, exactly as over a serial port, only without waiting. Prints the error
against the true LOP (mean, SD, worst), the share of clean failures (and of
failures that should not have happened), simulated time per measurement and
CPU time per measurement.

    .venv/bin/python bench/bench_lop.py [--limbs 200] [--skip 0] [--seed 1] [--hz 50] [--verbose]

Goal: mean error within 3 mmHg, SD within 5, every measurement under 45 s.
Anchor: Masri 2016, in-cuff vs Doppler, 1 +- 8 (upper limb), 0 +- 15 mmHg (lower).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.common.clock import ManualClock  # noqa: E402
from console.therapy.lop import LopMeasurement
from console.therapy.lop_estimate import LopResult
from drivers import codec  # noqa: E402
from drivers.emulator.firmware import ControllerFirmware  # noqa: E402


@dataclass
class Limb:
    lop: float
    heart_rate: float
    pulse_amplitude: float
    noise: float
    moving: bool
    seed: int

    @property
    def should_succeed(self) -> bool:
        """A still limb whose pulse stands clearly out of the noise: failing it is a miss."""
        return not self.moving and self.pulse_amplitude / self.noise >= 2.0


@dataclass
class Outcome:
    limb: Limb
    result: LopResult
    sim_s: float
    cpu_s: float
    max_target: float


class Rig:
    """One emulated channel and a host loop speaking CUFF-LINK/1 to it, on a manual clock."""

    def __init__(
        self,
        lop: float,
        *,
        heart_rate: float = 70.0,
        pulse_amplitude: float = 2.0,
        sensor_noise: float = 0.3,
        seed: int = 0,
        hz: int = 50,
        moving: bool = False,
    ) -> None:
        self.clock = ManualClock(start=0.0)
        self.fw = ControllerFirmware(
            channels=1,
            lops=[lop],
            heart_rate=heart_rate,
            pulse_amplitude=pulse_amplitude,
            sensor_noise=sensor_noise,
            seed=seed,
        )
        self.hz = hz
        self.reader = codec.LineReader()
        self.seq = 0
        self.max_target = 0.0
        self.commands: list[str] = []
        self.samples = 0
        self._last_tx = 0.0
        self.command("WATCHDOG", 2000)
        self.command("STREAM", hz)
        self.run_for(0.3)  # a few samples while vented, then zero the sensor like the station does
        self.command("ZERO", 1)
        if moving:
            self.fw.faults.movement.add(1)

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def command(self, verb: str, *args: object) -> None:
        self.seq = self.seq % codec.MAX_SEQ + 1
        self.fw.receive(codec.encode_command(self.seq, verb, *args), self.now)
        self.commands.append(" ".join([verb, *(str(a) for a in args)]))
        self._last_tx = self.now

    def poll(self) -> list[tuple[float, float]]:
        """Advance the firmware to now; return the samples (host time, channel 1 pressure) it sent."""
        self.fw.advance(self.now)
        out: list[tuple[float, float]] = []
        for body in self.reader.feed(self.fw.take_output()):
            try:
                msg = codec.parse_report(body)
            except codec.MalformedLine:
                continue
            if isinstance(msg, codec.Sample):
                out.append((self.now, msg.pressures[0]))
        self.samples += len(out)
        return out

    def run_for(self, seconds: float) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.clock.advance(min(1.0 / self.hz, end - self.now))
            out += self.poll()
        return out

    def measure(self, m: LopMeasurement, *, limit_s: float = 90.0) -> LopResult:
        """Run a measurement to its end, performing each action it asks for."""
        start = self.now
        while self.now - start < limit_s:
            action = m.next_action(self.now)
            if action.kind == "set":
                assert action.target is not None
                self.max_target = max(self.max_target, action.target)
                self.command("SET", 1, codec.format_pressure(action.target))
            elif action.kind == "deflate":
                self.command("DEFLATE", 1)
            elif action.kind == "done":
                assert m.result is not None
                return m.result
            if self.now - self._last_tx > 0.5:
                self.command("PING")
            self.clock.advance(1.0 / self.hz)
            for t, p in self.poll():
                m.feed(t, p)
        raise RuntimeError(f"measurement did not end within {limit_s} s")


def measure_limb(limb: Limb, *, hz: int = 50, **kwargs: object) -> Outcome:
    """Measure one simulated limb on its own emulated channel."""
    rig = Rig(
        limb.lop,
        heart_rate=limb.heart_rate,
        pulse_amplitude=limb.pulse_amplitude,
        sensor_noise=limb.noise,
        seed=limb.seed,
        hz=hz,
        moving=limb.moving,
    )
    m = LopMeasurement(clock=rig.clock, **kwargs)  # type: ignore[arg-type]
    cpu0 = time.process_time()
    result = rig.measure(m)
    assert m.started_at is not None and m.ended_at is not None
    return Outcome(limb, result, m.ended_at - m.started_at, time.process_time() - cpu0, rig.max_target)


def population(n: int, seed: int) -> list[Limb]:
    rng = random.Random(seed)
    return [
        Limb(
            lop=round(rng.uniform(100.0, 300.0), 1),
            heart_rate=round(rng.uniform(50.0, 110.0), 1),
            pulse_amplitude=round(rng.uniform(0.5, 4.0), 2),
            noise=round(rng.uniform(0.2, 1.0), 2),
            moving=rng.random() < 0.10,
            seed=rng.getrandbits(32),
        )
        for _ in range(n)
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limbs", type=int, default=200)
    ap.add_argument(
        "--skip",
        type=int,
        default=0,
        help="measure only limbs after the first SKIP of the population (quick iterations)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--hz",
        type=int,
        default=100,
        choices=(50, 100),
        help="stream rate; the station streams at 100 Hz (config stream_hz), the minimum for LOP is 50",
    )
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    limbs = population(args.limbs, args.seed)[args.skip :]
    outcomes: list[Outcome] = []
    wall0 = time.perf_counter()
    for limb in limbs:
        o = measure_limb(limb, hz=args.hz)
        outcomes.append(o)
        if args.verbose:
            r = o.result
            err = f"{r.lop - limb.lop:+6.1f}" if r.ok and r.lop is not None else "  fail"
            print(
                f"LOP {limb.lop:5.1f} HR {limb.heart_rate:5.1f} pulse {limb.pulse_amplitude:4.2f} "
                f"noise {limb.noise:4.2f} {'MOVE' if limb.moving else '    '} -> {err} "
                f"{o.sim_s:4.1f}s conf {r.confidence:.2f} {r.reason[:70]}"
            )
    wall = time.perf_counter() - wall0

    ok = [o for o in outcomes if o.result.ok and o.result.lop is not None]
    errors = [o.result.lop - o.limb.lop for o in ok]  # type: ignore[operator]
    failed = [o for o in outcomes if not o.result.ok]
    moving = [o for o in outcomes if o.limb.moving]
    moving_ok = [o for o in moving if o.result.ok]
    missed = [o for o in failed if o.limb.should_succeed]
    sims = [o.sim_s for o in outcomes]
    cpus = [o.cpu_s for o in outcomes]
    print(f"LOP bench: {len(outcomes)} limbs, stream {args.hz} Hz, seed {args.seed}")
    if errors:
        print(f"  measured          {len(ok)} ({100 * len(ok) / len(outcomes):.1f} %)")
        print(f"  error mean        {statistics.fmean(errors):+.2f} mmHg")
        print(f"  error SD          {statistics.pstdev(errors):.2f} mmHg")
        print(f"  error |worst|     {max(abs(e) for e in errors):.1f} mmHg")
        print(f"  within +-5 mmHg   {100 * sum(abs(e) <= 5 for e in errors) / len(errors):.1f} %")
        arm = [e for o, e in zip(ok, errors) if o.limb.lop < 200]
        leg = [e for o, e in zip(ok, errors) if o.limb.lop >= 200]
        for name, es in (("LOP < 200", arm), ("LOP >= 200", leg)):
            if len(es) > 1:
                print(f"  {name:<17} {statistics.fmean(es):+.2f} +- {statistics.pstdev(es):.2f} mmHg (n={len(es)})")
    print(f"  failed cleanly    {len(failed)} ({100 * len(failed) / len(outcomes):.1f} %)")
    print(f"  failed, should not {len(missed)} ({100 * len(missed) / len(outcomes):.1f} %)")
    print(f"  moving limbs      {len(moving)}, of which measured anyway {len(moving_ok)}")
    print(f"  simulated time    mean {statistics.fmean(sims):.1f} s, max {max(sims):.1f} s")
    print(f"  CPU per measure   mean {1000 * statistics.fmean(cpus):.0f} ms (estimator + emulator), wall {wall:.1f} s")
    print(f"  highest target    {max(o.max_target for o in outcomes):.1f} mmHg")
    print("  anchor: Masri 2016 in-cuff vs Doppler 1 +- 8 (upper limb), 0 +- 15 mmHg (lower)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
