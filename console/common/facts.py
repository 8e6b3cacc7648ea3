"""Facts every layer must agree on, stated once: limbs, the patient id, the pressure ceiling, fidelity.

A clinic's records, its config and its screens all refuse the same things for the same reasons;
each of those modules imports the fact from here instead of keeping a copy.
"""

from __future__ import annotations

import re
from typing import Final

LIMBS: Final = ("arm", "leg")
"""The limbs a cuff may be on (protocol and config say ``arm`` or ``leg``)."""

PATIENT_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A pseudonymous patient id as the records accept it (``fullmatch``): letters, digits, ``._-``."""

PATIENT_ID_RULE: Final = "a pseudonym of 1 to 64 letters, digits, '.', '_' or '-'"
"""The rule above in words, for refusals (``A patient id is ...``)."""

POSITIONS: Final = ("supine", "seated", "standing")
"""Body positions a LOP is measured and stored in: LOP depends on it (Hughes 2018), so it is a
fixed word, never free text (it reaches the records, the report and every console)."""

LOP_SOURCES: Final = ("auto", "doppler", "manual")
UNASSIGNED: Final = "unassigned"
"""The records' patient for a LOP taken before a patient was set on the cuff; moved to the patient later."""
"""Where a LOP came from: in-cuff pulsations (``auto``), a Doppler probe, or typed by hand."""

ABSOLUTE_MAX_MMHG: Final = 300.0
"""No cuff is ever commanded above this, whatever the config says (the station's hard ceiling)."""

LOP_PLAUSIBLE_MMHG: Final = {"arm": (60.0, 250.0), "leg": (80.0, 350.0)}
"""A LOP outside this range for the limb is a typo or a failed measurement, not a patient: an upper
limb occludes at about 100-180 mmHg, a lower limb at about 150-300 (Masri 2016; Hughes 2018)."""

FIDELITY_BAND: Final = 0.10
"""Pressure fidelity: the share of held time within +-10 % of target (Swain 2025)."""

CONTROL_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters a terminal or a text console acts on instead of showing (C0, DEL, C1, the Unicode
line and paragraph separators): never let them reach a screen or a report raw."""


def escape_controls(text: str) -> str:
    """``text`` with every control character written out (``\\x1b``), so it shows and never acts."""
    return CONTROL_CHARS.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )
