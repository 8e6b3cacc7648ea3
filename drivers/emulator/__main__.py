"""``python -m drivers.emulator``: an emulated controller on a pseudo-terminal.

Prints ``PORT <path>`` first, then ``STATE``/``EVENT`` lines as they happen,
and ``BYE`` after SIGINT or SIGTERM. Every line is flushed, so a parent
process (or a person) can follow along.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass

from drivers.codec import format_pressure
from drivers.emulator.channel import Faults
from drivers.emulator.firmware import MAX_SAMPLE_FIELDS, ControllerFirmware
from drivers.emulator.limb import FADES, LimbModel
from drivers.emulator.pty_port import PtyEmulator

DEFAULT_LEAK = 50.0
"""mmHg/s for ``--fault leak:CH`` without a rate: more than the pump can make up at most targets."""

FAULT_HELP = (
    "leak:CH[:MMHG_PER_S], frozen:CH, ventstuck:CH, movement:CH, broken:CH, "
    "garbage:RATE, corrupt:RATE, slow:SECONDS, silent, nosamples, samplechannels:N, "
    "deflaterefused:CH, deflatesilent:CH"
)


@dataclass
class ExerciseOpt:
    channel: int
    cadence_s: float


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _exercise(text: str) -> ExerciseOpt:
    ch, sep, cadence = text.partition(":")
    try:
        return ExerciseOpt(int(ch), float(cadence) if sep else 2.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CH:CADENCE_S (e.g. 1:2.0), got {text!r}") from None


def _breathing(text: str) -> tuple[float, float]:
    depth, sep, hz = text.partition(":")
    try:
        return float(depth), float(hz) if sep else 0.25
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DEPTH[:HZ] (e.g. 0.2:0.25), got {text!r}") from None


def limb_model(args: argparse.Namespace) -> LimbModel:
    """The limb the options describe. Raises ValueError with the reason."""
    depth, hz = args.breathing
    return LimbModel(
        fade=args.fade,
        peak_at=args.peak_at,
        rhythm_var=args.rhythm,
        breathing=depth,
        breathing_hz=hz,
        corrections=args.corrections,
    )


def apply_fault(faults: Faults, spec: str, channels: int) -> None:
    """Switch on one fault from its ``--fault`` spelling. Raises ValueError with the reason."""
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []

    def channel() -> int:
        if not parts or not parts[0].isdigit() or not 1 <= int(parts[0]) <= channels:
            raise ValueError(f"{kind} needs a channel 1..{channels}: {spec!r}")
        return int(parts[0])

    def number(lo: float, hi: float) -> float:
        try:
            value = float(parts[0])
        except (IndexError, ValueError):
            raise ValueError(f"{kind} needs a number: {spec!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"{kind} must be {lo}..{hi}: {spec!r}")
        return value

    if kind == "leak":
        ch = channel()
        rate = DEFAULT_LEAK
        if len(parts) > 1:
            try:
                rate = float(parts[1])
            except ValueError:
                raise ValueError(f"leak rate must be a number: {spec!r}") from None
            if not 0.0 < rate <= 1000.0:
                raise ValueError(f"leak rate must be 0..1000 mmHg/s: {spec!r}")
        faults.leak[ch] = rate
    elif kind == "frozen":
        faults.frozen_sensor.add(channel())
    elif kind == "ventstuck":
        faults.vent_stuck.add(channel())
    elif kind == "movement":
        faults.movement.add(channel())
    elif kind == "broken":
        faults.broken_sensor.add(channel())
    elif kind == "garbage":
        faults.garbage_rate = number(0.0, 1.0)
    elif kind == "corrupt":
        faults.corrupt_rate = number(0.0, 1.0)
    elif kind == "slow":
        faults.slow_answer_s = number(0.0, 60.0)
    elif kind == "silent" and not parts:
        faults.silent = True
    elif kind == "nosamples" and not parts:
        faults.no_samples = True
    elif kind == "samplechannels":
        if len(parts) != 1 or not parts[0].isdigit() or not 1 <= int(parts[0]) <= MAX_SAMPLE_FIELDS:
            raise ValueError(f"samplechannels needs a count 1..{MAX_SAMPLE_FIELDS}: {spec!r}")
        faults.sample_channels = int(parts[0])
    elif kind == "deflaterefused":
        faults.deflate_refused.add(channel())
    elif kind == "deflatesilent":
        faults.deflate_silent.add(channel())
    else:
        raise ValueError(f"unknown fault {spec!r}; known: {FAULT_HELP}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drivers.emulator", description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=4, help="1..8 (default 4)")
    p.add_argument("--lop", type=_floats, help="true LOP per channel, mmHg, comma-separated (100..300)")
    p.add_argument("--heart-rate", type=float, default=70.0, help="beats a minute (default 70)")
    p.add_argument("--pulse", type=float, default=2.0, help="peak arterial pulse in the cuff, mmHg (default 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max", type=float, default=300.0, help="the controller's max pressure, mmHg (default 300)")
    p.add_argument("--model", default="EMU-4")
    p.add_argument("--fw", default="1.0")
    p.add_argument("--serial", default="E0001")
    p.add_argument("--link", help="serve through this symlink (like /dev/serial/by-id/...)")
    limb = p.add_argument_group("the limb (every channel)")
    limb.add_argument("--fade", choices=FADES, default="cos2", help="how the pulse fades to the LOP (default cos2)")
    limb.add_argument("--peak-at", type=float, default=0.6, help="where the pulse peaks, share of the LOP (0.4..0.8)")
    limb.add_argument(
        "--rhythm", type=float, default=0.03, help="beat-to-beat variation of the heart period, 0.03..0.2 (AF)"
    )
    limb.add_argument(
        "--breathing", type=_breathing, default=(0.0, 0.25), metavar="DEPTH[:HZ]", help="pulse swell, e.g. 0.2:0.25"
    )
    limb.add_argument(
        "--corrections", action="store_true", help="the regulator keeps correcting while holding (1-3 s, 3 mmHg)"
    )
    p.add_argument("--exercise", type=_exercise, action="append", default=[], metavar="CH:CADENCE")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[:ARG]", help=FAULT_HELP)
    return p


def make_firmware(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ControllerFirmware:
    try:
        firmware = ControllerFirmware(
            channels=args.channels,
            max_pressure=args.max,
            lops=args.lop,
            heart_rate=args.heart_rate,
            pulse_amplitude=args.pulse,
            seed=args.seed,
            model=args.model,
            fw=args.fw,
            serial=args.serial,
            limb=limb_model(args),
        )
        for ex in args.exercise:
            if not 1 <= ex.channel <= args.channels:
                raise ValueError(f"--exercise channel must be 1..{args.channels}, got {ex.channel}")
            firmware.exercise(ex.channel, cadence_s=ex.cadence_s, contraction_s=min(1.0, ex.cadence_s / 2))
        for spec in args.fault:
            apply_fault(firmware.faults, spec, args.channels)
    except ValueError as e:
        parser.error(str(e))
    return firmware


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(firmware: ControllerFirmware, link: str | None) -> int:
    firmware.on_state = lambda ch, state, target, reading: _say(
        f"STATE {ch} {state} target={format_pressure(target)} pressure={format_pressure(reading)}"
    )
    firmware.on_event = lambda body: _say(f"EVENT {body}")
    emulator = PtyEmulator(firmware, link_path=link)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    path = await emulator.start()
    _say(f"PORT {path}")
    try:
        await stop.wait()
    finally:
        await emulator.stop()
    _say("BYE")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    firmware = make_firmware(args, parser)
    try:
        return asyncio.run(serve(firmware, args.link))
    except OSError as e:
        print(f"emulator: cannot serve the port: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
