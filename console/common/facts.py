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

ABSOLUTE_MAX_MMHG: Final = 300.0
"""No cuff is ever commanded above this, whatever the config says (the station's hard ceiling)."""

LOP_PLAUSIBLE_MMHG: Final = {"arm": (60.0, 250.0), "leg": (80.0, 350.0)}
"""A LOP outside this range for the limb is a typo or a failed measurement, not a patient: an upper
limb occludes at about 100-180 mmHg, a lower limb at about 150-300 (Masri 2016; Hughes 2018)."""

FIDELITY_BAND: Final = 0.10
"""Pressure fidelity: the share of held time within +-10 % of target (Swain 2025)."""
