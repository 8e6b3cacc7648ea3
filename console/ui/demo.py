"""Try the console by hand: ``python -m console.ui.demo [--config config.toml] [--kiosk] [--theme ansi]``.

Runs the app on the real Station (the shipped config drives in-process
emulated controllers), or with ``--fake N`` on the scripted in-memory station
(:mod:`console.ui.demo_station`). Not the product's entry point (that is ``bfr-console``).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from console.common.api import Priority
from console.ui.app import BfrApp
from console.ui.demo_station import DemoStation

ROOT = Path(__file__).resolve().parents[2]


async def _run_real(args: argparse.Namespace) -> int:
    from console.app_runner import build_station
    from console.config.loader import load_config

    config = load_config(args.config)
    station = build_station(config)  # with the therapy engine: sessions and LOP measurement work
    await station.start()
    try:
        app = BfrApp(
            station,
            kiosk=args.kiosk,
            theme=args.theme or config.ui.theme,
            fps=config.ui.fps,
            bell=config.alarms.bell,
        )
        await app.run_async()
    finally:
        await station.stop()
    return 0


async def _run_fake(args: argparse.Namespace) -> int:
    st = DemoStation(args.fake)
    st.set_cuff("A1", state="HOLDING", pressure=182.0, target=184.0, occlusion_s=192.0)
    st.raise_alarm(Priority.MEDIUM, "LEAK", "A2", "A2 pump ran 8 s without pause")
    await BfrApp(st, kiosk=args.kiosk, theme=args.theme or "auto").run_async()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.ui.demo", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "config.toml"))
    p.add_argument("--kiosk", action="store_true")
    p.add_argument("--theme", default=None, help="auto | ansi | a Textual theme name (default: the config's)")
    p.add_argument("--fake", type=int, default=0, metavar="N", help="N scripted cuffs instead of the real station")
    args = p.parse_args(argv)
    return asyncio.run(_run_fake(args) if args.fake else _run_real(args))


if __name__ == "__main__":
    raise SystemExit(main())
