"""A station config drafted from what the scan found, checked by the console's own loader, written safely.

The draft is plain data the setup screen edits (names, limbs, labels, widths,
pairs). Writing goes through :func:`console.config.loader.parse_config`, the
validation the console runs at start, so a file that setup writes is one the
console starts with. An existing file is never lost: it is kept beside the new
one as ``FILE.bak`` (the screen and ``--yes`` are the only ways to replace it,
after the changes were shown).
"""

from __future__ import annotations

import difflib
import os
import shutil
import string
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from console.config.loader import ConfigError, parse_config
from console.config.schema import StationConfig
from console.setup.scan import PortReport

LIMBS = ("leg", "arm")
HEADER = (
    "# BFR station configuration, written by `bfr-console setup`.\n"
    "# Every key left out takes its default: see the commented config.toml shipped with the console.\n"
    "# The controllers setup found have their serial pinned: a port that answers as another one is refused.\n\n"
)
KEPT_SECTIONS = ("station", "safety", "alarms", "ui", "roles", "plans")
"""What a replaced config keeps of the old file: everything but its controllers and cuffs."""


@dataclass
class DraftController:
    id: str
    port: str
    serial: str
    channels: int
    model: str = ""


@dataclass
class DraftCuff:
    id: str
    controller: str
    channel: int
    limb: str = "leg"
    label: str = ""
    width_cm: float | None = None
    pair: str | None = None


@dataclass
class Draft:
    controllers: list[DraftController] = field(default_factory=list)
    cuffs: list[DraftCuff] = field(default_factory=list)

    def controller(self, cid: str) -> DraftController:
        return next(c for c in self.controllers if c.id == cid)


def controller_ids(n: int) -> list[str]:
    """A, B, ... Z, then C27, C28 ... (short names that read well on a panel: ``A1``)."""
    letters = string.ascii_uppercase
    return [letters[i] if i < len(letters) else f"C{i + 1}" for i in range(n)]


def draft_from(reports: Sequence[PortReport], taken: Collection[str] = ()) -> Draft:
    """One controller per usable port (its serial pinned), one leg cuff per channel (``A1``, ``A2`` ...).

    ``taken``: controller and cuff ids already in use (a config being extended); new ones avoid them.
    """
    usable = [r for r in reports if r.usable and r.info is not None]
    draft = Draft()
    free = [cid for cid in controller_ids(len(usable) + len(taken) + 1) if not _clashes(cid, taken)]
    for cid, r in zip(free, usable, strict=False):
        assert r.info is not None
        draft.controllers.append(DraftController(cid, r.port, r.info.serial, r.info.channels, r.info.model))
        for ch in range(1, r.info.channels + 1):
            draft.cuffs.append(DraftCuff(f"{cid}{ch}", cid, ch, label=f"{cid} channel {ch}"))
    return draft


def _clashes(cid: str, taken: Collection[str]) -> bool:
    """A controller id is free if neither it nor a cuff id it would make (``A1`` ...) is taken."""
    return cid in taken or any(t.startswith(cid) and t[len(cid) :].isdigit() for t in taken)


def taken_ids(extend: dict[str, Any]) -> set[str]:
    """The controller and cuff ids of a config being extended (raw TOML)."""
    return {str(t.get("id")) for key in ("controllers", "cuffs") for t in extend.get(key, []) if isinstance(t, dict)}


def read_hardware(path: Path) -> dict[str, Any]:
    """The controllers and cuffs of a running config, as written (a config being extended keeps them)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {k: v for k, v in data.items() if k in ("controllers", "cuffs") and isinstance(v, list)}


def document(draft: Draft, kept: dict[str, Any] | None = None, extend: dict[str, Any] | None = None) -> dict[str, Any]:
    """The TOML document: the kept sections of an old file (if any), the controllers and cuffs of a
    config being extended (``extend``, as written), then the draft's controllers and cuffs."""
    doc: dict[str, Any] = {k: v for k, v in (kept or {}).items() if k in KEPT_SECTIONS}
    doc.setdefault("station", {"name": "BFR station"})
    doc["controllers"] = list((extend or {}).get("controllers", [])) + [
        {"id": c.id, "port": c.port, "serial": c.serial, "channels": c.channels} for c in draft.controllers
    ]
    cuffs = list((extend or {}).get("cuffs", []))
    for c in draft.cuffs:
        d: dict[str, Any] = {"id": c.id, "controller": c.controller, "channel": c.channel, "limb": c.limb}
        if c.label:
            d["label"] = c.label
        if c.width_cm is not None:
            d["width_cm"] = c.width_cm
        if c.pair:
            d["pair"] = c.pair
        cuffs.append(d)
    doc["cuffs"] = cuffs
    return doc


def render(doc: dict[str, Any]) -> str:
    """TOML a person can read: tables first, each ``[[controllers]]``/``[[cuffs]]`` block on its own.

    (tomli-w 1.2 writes a short array of tables inline, one long line per cuff.)
    """
    parts = [HEADER.rstrip("\n") + "\n"]
    for key, value in doc.items():
        if isinstance(value, dict):
            parts.append(tomli_w.dumps({key: value}))
    for key, value in doc.items():
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for item in value:
                flat = {k: v for k, v in item.items() if not isinstance(v, dict)}
                block = f"[[{key}]]\n" + tomli_w.dumps(flat)
                for sub, table in item.items():
                    if isinstance(table, dict):
                        block += f"\n[{key}.{sub}]\n" + tomli_w.dumps(table)
                parts.append(block)
        elif not isinstance(value, dict):
            parts.insert(1, tomli_w.dumps({key: value}))
    return "\n".join(parts)


def read_kept(path: Path) -> dict[str, Any]:
    """The sections an existing config keeps when replaced; empty if there is none or it is not TOML."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return {k: v for k, v in data.items() if k in KEPT_SECTIONS}


def check(text: str, path: Path) -> StationConfig:
    """Validate ``text`` as the console would load it from ``path``; raises ConfigError naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # tomli-w writes valid TOML; a bug would show here
        raise ConfigError([f"{path}: generated text is not TOML: {exc}"], str(path)) from None
    return parse_config(data, str(path), base_dir=path.expanduser().resolve().parent)


def diff(path: Path, new_text: str) -> str:
    """What replacing ``path`` by ``new_text`` changes (unified diff); empty if there is no file."""
    try:
        old = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new_text.splitlines(keepends=True), f"{path} (now)", f"{path} (new)"
    )
    return "".join(lines)


def backup_path(path: Path) -> Path:
    """``FILE.bak``, or ``FILE.bak.1``, ``.2`` ... if that is taken: an older backup is never overwritten."""
    bak = path.with_name(path.name + ".bak")
    n = 1
    while bak.exists():
        bak = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return bak


def write(path: Path, text: str) -> Path | None:
    """Write ``text`` to ``path`` atomically; an existing file is kept as a backup first (returned)."""
    path = path.expanduser()
    bak: Path | None = None
    if path.exists():
        bak = backup_path(path)
        shutil.copy2(path, bak)  # the old file, byte for byte, under its new name
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return bak


def edit_cuff(draft: Draft, cuff_id: str, *, new_id: str, limb: str, label: str, width: str, pair: str) -> None:
    """Apply what was typed for one cuff; pairing is made mutual (and an old partner released).

    Raises:
        ValueError: a sentence saying what to type instead (the draft is unchanged then).
    """
    cuff = next(c for c in draft.cuffs if c.id == cuff_id)
    new_id, limb, label, width, pair = new_id.strip(), limb.strip().lower(), label.strip(), width.strip(), pair.strip()
    if not new_id or any(ch.isspace() for ch in new_id):
        raise ValueError("The name must be one word, e.g. A1 or LT.")
    if new_id != cuff.id and any(c.id == new_id for c in draft.cuffs):
        raise ValueError(f"Another cuff is named {new_id} already.")
    if limb not in LIMBS:
        raise ValueError('The limb is "leg" or "arm".')
    width_cm: float | None = None
    if width:
        try:
            width_cm = float(width)
        except ValueError:
            raise ValueError("The cuff width is a number of cm, e.g. 11.5, or empty.") from None
        if not 2.0 <= width_cm <= 40.0:
            raise ValueError("The cuff width is 2 to 40 cm.")
    partner = None
    if pair:
        if pair in (cuff_id, new_id):
            raise ValueError("A cuff cannot be paired with itself.")
        partner = next((c for c in draft.cuffs if c.id == pair), None)
        if partner is None:
            raise ValueError(f"No cuff is named {pair}.")
    for c in draft.cuffs:  # renamed: the partner's pair follows; unpaired: the old partner is released
        if c.pair == cuff.id:
            c.pair = None
    if partner is not None:
        if partner.pair and partner.pair != cuff.id:
            old = next((c for c in draft.cuffs if c.id == partner.pair), None)
            if old is not None:
                old.pair = None
        partner.pair = new_id
    cuff.id, cuff.limb, cuff.label, cuff.width_cm = new_id, limb, label, width_cm
    cuff.pair = partner.id if partner is not None else None
