"""``bfr-console setup --write FILE``: scan, draft, check and write a config with no screen.

For scripted installs and for trying a station on emulators. Ports that did not
answer are listed on stderr and left out; the file is written only if the
console's own validation accepts it; an existing file is replaced only with
``--yes``, after its diff is shown, and kept as ``FILE.bak``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from console.config.loader import ConfigError
from console.setup import draft as drafting
from console.setup.scan import DEFAULT_TIMEOUT_S, PortReport, find_ports, scan


def report_lines(reports: Sequence[PortReport], out: TextIO, err: TextIO) -> None:
    """Each answering controller on ``out``; each port left out, and why, on ``err``."""
    for r in reports:
        if r.usable:
            print(f"found   {r.describe()}", file=out)
        else:
            print(f"skipped {r.describe()}", file=err)


def run(
    ports: Sequence[str],
    write_to: str,
    *,
    yes: bool,
    timeout: float = DEFAULT_TIMEOUT_S,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The whole headless setup; the exit status (0 written, 1 nothing usable or refused, 2 invalid)."""
    candidates = find_ports(ports)
    if not candidates:
        print("bfr-console setup: no serial port found (give them with --ports)", file=err)
        return 1
    reports = asyncio.run(scan(candidates, timeout=timeout))
    report_lines(reports, out, err)
    draft = drafting.draft_from(reports)
    if not draft.controllers:
        print("bfr-console setup: no controller answered; nothing was written", file=err)
        return 1
    path = Path(write_to).expanduser()
    text = drafting.render(drafting.document(draft, drafting.read_kept(path)))
    try:
        config = drafting.check(text, path)
    except ConfigError as exc:
        print(f"bfr-console setup: the drafted config was refused, nothing was written:\n{exc}", file=err)
        return 2
    changes = drafting.diff(path, text)
    if path.exists():
        print(f"{path} exists; replacing it changes:\n{changes or '(nothing)'}", file=err)
        if not yes:
            print("bfr-console setup: not replaced (add --yes to replace it; the old file is kept as .bak)", file=err)
            return 1
    backup = drafting.write(path, text)
    if backup is not None:
        print(f"kept the old config as {backup}", file=out)
    cuffs = len(config.cuffs)
    print(f"wrote {path}: {len(config.controllers)} controllers, {cuffs} cuffs", file=out)
    print(f"start the console with: bin/console --config {path}", file=out)
    return 0
