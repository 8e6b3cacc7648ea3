"""Reports and the patients screen on a clinic's worth of records.

Run: .venv/bin/python bench/bench_patients.py [--patients 1000] [--sessions 20000]

Builds records with that many patients and sessions (20 a patient by default, each
with its cuffs, 4 LOPs a patient, an alarm every 4th session) plus one 10-minute
session on 16 cuffs (600 s x 16 per-second rows, its phases, 10 alarms and an
emergency). Then prints:
- the report of the 16-cuff session: text, CSV and PDF, in this process and as
  the ``bfr-console report`` command a user runs (Python start-up included);
- the patients screen (the real app, headless, 80x24, on a station with an
  emulated controller), two ways, with the alarm list (``l``) timed the same ways
  in the same run as a baseline:
  - from the key ``P`` to the first patient's session rows painted: the key goes to
    the app as the terminal's would, and the painted frame is read every 5 ms;
  - as earlier versions of this bench measured it: through ``Pilot.press``, which
    returns only once the app has been idle for a while (most of that figure), then
    until the rows are in the tables.
Asserts nothing. ``--code DIR`` runs against another copy of the code (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if "--code" in sys.argv:  # another copy of the code, for a before/after in one way of measuring
    ROOT = Path(sys.argv[sys.argv.index("--code") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from console.config.loader import parse_config  # noqa: E402
from console.records.pdf import session_pdf  # noqa: E402
from console.records.report import export_session_csv, session_report  # noqa: E402
from console.records.schema import DB_NAME  # noqa: E402
from console.records.store import Records  # noqa: E402
from console.station.station import Station  # noqa: E402
from console.ui.app import BfrApp  # noqa: E402

T0 = 1_790_000_000.0
DAY = 86400.0


def build(var: Path, patients: int, sessions: int) -> int:
    """Fill ``var`` with the records; returns the id of the 16-cuff session."""
    Records.open(var).close()  # the schema, as the station makes it
    rnd = random.Random(7)
    c = sqlite3.connect(var / DB_NAME)
    per = max(1, sessions // patients)
    sid = 0
    # The alarm band each cuff ran with, where the schema keeps it (not before schema 3: --code of an older copy).
    has_tolerance = any(r[1] == "tolerance_mmhg" for r in c.execute("PRAGMA table_info(session_cuffs)"))
    tolerance = ", 15" if has_tolerance else ""
    cuff_cols = (
        "session_id, cuff_id, label, limb, lop_mmhg, lop_id, position, cuff_width_cm, target_mmhg, occlusion_s, fidelity"
        + (", tolerance_mmhg" if has_tolerance else "")
    )
    with c:
        for p in range(patients):
            pid = f"P-{p:04d}"
            c.execute("INSERT INTO patients (id, created_at, note) VALUES (?, ?, '')", (pid, T0))
            for k in range(4):
                c.execute(
                    "INSERT INTO lop_measurements (patient_id, cuff_id, limb, label, position, cuff_width_cm, lop_mmhg,"
                    " source, confidence, at) VALUES (?, 'A1', 'leg', 'left thigh', ?, 11.5, ?, ?, NULL, ?)",
                    (pid, "seated" if k else "supine", 180 + rnd.random() * 40, "doppler", T0 + k * 10 * DAY + p),
                )
            for k in range(per):
                sid += 1
                start = T0 + k * 3 * DAY + p * 60
                c.execute(
                    "INSERT INTO sessions (id, patient_id, cuffs, plan_id, plan_name, started_at, ended_at, end_reason,"
                    " sets_done, reps_per_set, occlusion_s, fidelity, target_mmhg, target_pct_lop, lop_mmhg, position,"
                    " sets_planned, sets_stopped) VALUES (?, ?, '[\"A1\", \"A2\"]', 'legs-30-15', 'Legs 30-15-15-15',"
                    " ?, ?, 'completed', 4, '[30, 15, 15, 15]', 700, 0.95, 150, 80, 188, 'seated', 4, 0)",
                    (sid, pid, start, start + 900),
                )
                for cuff, lop in (("A1", 188), ("A2", 184)):
                    c.execute(
                        f"INSERT INTO session_cuffs ({cuff_cols}) VALUES (?, ?, ?, 'leg', ?, NULL, 'seated', 11.5, ?,"
                        f" 700, 0.95{tolerance})",
                        (sid, cuff, f"{cuff} thigh", lop, lop * 0.8),
                    )
                if k % 4 == 0:
                    c.execute(
                        "INSERT INTO alarms (priority, cause, message, cuff_id, raised_at) VALUES"
                        " ('medium', 'OFF_TARGET', 'drift', 'A1', ?)",
                        (start + 60,),
                    )
        sid += 1
        big = sid
        cuffs = [f"C{i:02d}" for i in range(16)]
        start = T0 + 400 * DAY
        c.execute("INSERT INTO patients (id, created_at, note) VALUES ('P-BIG', ?, '')", (start,))
        c.execute(
            "INSERT INTO sessions (id, patient_id, cuffs, plan_id, plan_name, started_at, ended_at, end_reason,"
            " sets_done, reps_per_set, occlusion_s, fidelity, target_mmhg, target_pct_lop, lop_mmhg, position,"
            " sets_planned, sets_stopped) VALUES (?, 'P-BIG', ?, 'passive-legs', 'Passive', ?, ?, 'emergency', 2,"
            " '[0, 0]', 540, 0.9, 150, 70, 200, 'seated', 5, 1)",
            (big, json.dumps(cuffs), start, start + 600),
        )
        rows = []
        for cuff in cuffs:
            c.execute(
                f"INSERT INTO session_cuffs ({cuff_cols}) VALUES (?, ?, ?, 'leg', 200, NULL, 'seated', 11.5, 140, 540,"
                f" 0.9{tolerance})",
                (big, cuff, f"cuff {cuff}"),
            )
            for t in range(600):
                target = 0.0 if 300 <= t < 360 else 140.0
                p = target + rnd.gauss(0, 4) if target else 5.0
                rows.append(
                    (big, cuff, start + t, p - 2, p, p + 2, target, 0.97 if target else None, start + t + 0.99, 0.99)
                )
        c.executemany("INSERT INTO session_samples VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        for t, phase in ((0, "inflating"), (5, "set"), (300, "rest"), (360, "set")):
            c.execute(
                "INSERT INTO commands (at, who, role, what) VALUES (?, 'station', 'station', ?)",
                (start + t, f"session #{big} phase {phase} 1"),
            )
        for k in range(10):
            c.execute(
                "INSERT INTO alarms (priority, cause, message, cuff_id, raised_at) VALUES ('high', 'OFF_TARGET', 'x', ?, ?)",
                (cuffs[k], start + 30 + 50 * k),
            )
        c.execute(
            "INSERT INTO emergencies (at, by, confirmed, pending) VALUES (?, 'local', '[\"A\"]', '[]')", (start + 590,)
        )
    c.close()
    return big


def timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def report_figures(base: Path, var: Path, big: int) -> None:
    out = base / "out"
    out.mkdir()
    with Records.open(var, readonly=True) as r:
        text = timed(lambda: session_report(r, big))
        csv_s = timed(lambda: export_session_csv(r, big, out / "big.csv"))
        cpu = time.process_time()
        pdf = timed(lambda: session_pdf(r, big, out / "big.pdf"))
        pdf_cpu = time.process_time() - cpu
    print(
        f"16-cuff 10-min session, in process: text {text * 1000:.0f} ms, CSV {csv_s * 1000:.0f} ms, PDF {pdf * 1000:.0f} ms"
        f" (CPU {pdf_cpu * 1000:.0f} ms: on a shared machine the wall time also counts other people's work)"
    )
    cfg = base / "config.toml"
    cfg.write_text(
        f'[station]\ndata_dir = "{var}"\nsocket = "{base / "bfr.sock"}"\n'
        '[[controllers]]\nid = "A"\nport = "emulator"\n[[cuffs]]\nid = "A1"\ncontroller = "A"\nchannel = 1\nlimb = "leg"\n'
    )
    # The command as a user runs it, from the code measured (``python -m console.cli`` is ``bfr-console``).
    exe = [sys.executable, "-m", "console.cli"]
    for what, extra in (("text", []), ("PDF", ["--pdf", str(out / "cli.pdf")]), ("CSV", ["--csv", str(out / "c.csv")])):
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [*exe, "--config", str(cfg), "report", "--session", str(big), *extra],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(
            f"16-cuff 10-min session, `bfr-console report --session {big} {' '.join(extra[:1])}` ({what}): "
            f"{wall:.2f} s wall, {cpu:.2f} s CPU, Python start-up included"
        )


async def screen_figures(base: Path, var: Path, rounds: int) -> None:
    cfg = parse_config(
        {
            "station": {"name": "Bench", "data_dir": str(var), "socket": str(base / "s.sock")},
            "controllers": [{"id": "A", "port": "emulator", "channels": 2}],
            "cuffs": [
                {"id": "A1", "controller": "A", "channel": 1, "limb": "leg", "label": "left thigh", "width_cm": 11.5},
                {"id": "A2", "controller": "A", "channel": 2, "limb": "leg", "label": "right thigh"},
            ],
        },
        str(base / "config.toml"),
    )
    records = Records.open(var)
    station = Station(cfg, records=records)
    await station.start()
    finds, histories = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        await station.find_patients("", 200)
        finds.append(time.perf_counter() - t)
        t = time.perf_counter()
        await station.patient_history("P-0500")
        histories.append(time.perf_counter() - t)
    print(
        f"the station's answers: 200 most recent patients {statistics.median(finds) * 1000:.0f} ms, "
        f"one patient's history (4 LOPs, 20 sessions with alarm counts) {statistics.median(histories) * 1000:.1f} ms"
    )
    app = BfrApp(station, bell=False, theme="textual-dark")
    painted: list[float] = []
    painted_alarms: list[float] = []
    opened: list[float] = []
    alarms: list[float] = []
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.5)
            for _ in range(rounds):
                painted.append(await key_to_paint(app, "P", patients_painted))
                await pilot.press("f10")
                await pilot.pause()
                painted_alarms.append(await key_to_paint(app, "l", lambda lines: any("Alarms" in ln for ln in lines)))
                await pilot.press("q")
                await pilot.pause()
            for _ in range(rounds):
                t = time.perf_counter()
                await pilot.press("P")
                deadline = t + 30
                while time.perf_counter() < deadline:
                    screen: Any = app.screen
                    h = getattr(screen, "history", None)
                    if screen.id == "patients" and h is not None:
                        lops, sessions = screen.query_one("#lops"), screen.query_one("#sessions")
                        if lops.row_count == len(h.lops) and sessions.row_count == len(h.sessions) > 0:
                            break
                    await asyncio.sleep(0.002)
                else:
                    raise RuntimeError("the patients screen did not show a patient within 30 s")
                opened.append(time.perf_counter() - t)
                await pilot.press("f10")
                await pilot.pause()
                t = time.perf_counter()
                await pilot.press("l")
                while app.screen.id != "alarms":
                    await asyncio.sleep(0.002)
                await pilot.pause()
                alarms.append(time.perf_counter() - t)
                await pilot.press("q")
                await pilot.pause()
    finally:
        await station.stop()
        records.close()
    n = len(opened)
    print(
        f"patients screen, key P to the first patient's session rows painted ({n} opens): "
        f"median {statistics.median(painted) * 1000:.0f} ms, max {max(painted) * 1000:.0f} ms; "
        f"baseline, key l to the alarm list painted: median {statistics.median(painted_alarms) * 1000:.0f} ms"
    )
    print(
        f"as measured before (Pilot.press, which waits for the app to be idle): P to the list and the first "
        f"patient's LOPs and sessions in their tables: median {statistics.median(opened) * 1000:.0f} ms, "
        f"max {max(opened) * 1000:.0f} ms; the alarm list (l) the same way: median {statistics.median(alarms) * 1000:.0f} ms"
    )


def patients_painted(lines: list[str]) -> bool:
    """The patients screen as a person sees it: a patient's sessions listed under their heading."""
    heading = next((i for i, ln in enumerate(lines) if "sessions of P-" in ln), None)
    return heading is not None and any(ln.strip("│ ").startswith("20") for ln in lines[heading + 2 : heading + 4])


async def key_to_paint(app: BfrApp, key: str, painted: Any) -> float:
    """Seconds from a key given to the app (as its driver would) to a frame that ``painted(lines)`` accepts.

    No Pilot.press: it waits for the app to be idle after the key, which is not what a person waits for.
    """
    from textual import events

    driver = app._driver
    assert driver is not None
    t = time.perf_counter()
    event = events.Key(key, key)
    event.set_sender(app)
    driver.send_message(event)
    deadline = t + 30
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
        lines = ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]
        if painted(lines):
            return time.perf_counter() - t
    raise RuntimeError(f"key {key!r}: the screen did not show what was expected within 30 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--code", metavar="DIR", help="measure another copy of the code (read before the imports)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-patients-"))
    var = base / "var"
    t = time.perf_counter()
    big = build(var, args.patients, args.sessions)
    print(
        f"records: {args.patients} patients, {args.sessions} sessions + one 16-cuff session, built in "
        f"{time.perf_counter() - t:.1f} s ({(var / DB_NAME).stat().st_size / 1e6:.1f} MB) in {base}"
    )
    report_figures(base, var, big)
    asyncio.run(screen_figures(base, var, args.rounds))


if __name__ == "__main__":
    main()
