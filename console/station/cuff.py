"""Per-cuff live state, updated on the hot path (every sample of every cuff).

:meth:`CuffState.add_sample` runs 100 times a second for each of up to 16
cuffs on a Raspberry Pi, so it does O(1) work with no allocation beyond the
float it stores: the 10-second trace is a fixed ring of 10 points a second,
filled by time bucket as samples arrive; the tuple the snapshot needs is built
only when a new point has gone in.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACE_HZ = 10
"""Points per second in the snapshot's trace."""

REPERFUSION_S = 2.0
"""While the cuff still has a target, pressure must stay under the occlusion threshold this long
to end an occlusion episode: one noisy or artefact sample is not a release, and must not restart
the occlusion clock. A cuff vented on purpose (target 0) ends its episode at once."""

TRACE_SECONDS = 10
TRACE_POINTS = TRACE_HZ * TRACE_SECONDS


@dataclass(frozen=True, slots=True)
class CuffSpec:
    """What the config says about a cuff, with defaults already resolved."""

    id: str
    controller: str
    channel: int
    limb: str
    label: str
    max_pct_lop: float
    tolerance: float
    occlusion_warn_s: float
    occlusion_limit_s: float
    max_mmhg_without_lop: float = 80.0
    """The target limit while the LOP is unknown (per limb in the config: arms lower)."""
    width_cm: float | None = None
    lop: float | None = None
    pair: str | None = None


class CuffState:
    """The station's live view of one cuff."""

    __slots__ = (
        "spec",
        "id",
        "channel",
        "lop",
        "lop_position",
        "lop_width_cm",
        "lop_source",
        "lop_at",
        "lop_record_id",
        "lop_patient",
        "patient_id",
        "pressure",
        "target",
        "ctrl_state",
        "ctrl_target",
        "duty",
        "latched",
        "latch_cause",
        "latch_found_at",
        "samples",
        "last_sample_at",
        "occlusion_since",
        "below_since",
        "gen",
        "pending_deflate",
        "sanctioned_mmhg",
        # supervisor bookkeeping
        "off_since",
        "off_raised",
        "armed",
        "reached",
        "short_raised",
        "deflated_at",
        "residual_raised",
        "deflate_alarmed",
        "residual_deflate_at",
        "target_set_at",
        "leak_since",
        "occ_warned",
        "occ_limit_hit",
        "limit_deflate_at",
        # trace ring
        "_trace",
        "_trace_pos",
        "_trace_len",
        "_trace_bucket",
        "_trace_cache",
    )

    def __init__(self, spec: CuffSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.channel = spec.channel
        self.lop: float | None = spec.lop
        self.lop_position = ""
        self.lop_width_cm: float | None = spec.width_cm
        self.lop_source = "config" if spec.lop is not None else ""
        self.lop_at: float | None = None
        """Wall time the LOP was measured (None for one from the config)."""
        self.lop_record_id: int | None = None
        """Its ``lop_measurements`` row, when the records have it."""
        self.lop_patient = ""
        """Whom the records file it under (``unassigned`` until a patient is set on the cuff)."""
        self.patient_id: str | None = None
        self.pressure: float | None = None
        self.target = 0.0
        """What the station wants (0 = vented); follows the controller's status lines."""
        self.ctrl_state: str | None = None
        """Channel state from the newest ``C`` line since the link became READY; None before."""
        self.ctrl_target = 0.0
        self.duty = 0
        self.latched = False
        self.latch_cause = ""
        self.latch_found_at: float | None = None
        """When a status (or a refused SET) first showed the latch; None once its alarm is known."""
        self.samples = 0
        self.last_sample_at: float | None = None
        self.occlusion_since: float | None = None
        self.below_since: float | None = None
        """When the pressure went under the threshold during an episode (a release in progress)."""
        self.gen = 0
        """Bumped by every deflate, so an inflate that raced one knows it lost."""
        self.pending_deflate = False
        """A deflate was asked for and not confirmed yet: retried until the controller confirms it."""
        self.sanctioned_mmhg = 0.0
        """The highest target this station has sent and not seen superseded: a controller reporting more is obeying someone else."""
        self.off_since: float | None = None
        self.off_raised = False
        self.armed = False
        """The off-target rule judges this cuff only once pressure has reached its (new) target."""
        self.reached = False
        """The pressure has come within the tolerance of the present target since it was set."""
        self.short_raised = False
        """A NOT_REACHED alarm is up for this cuff."""
        self.deflated_at: float | None = None
        """Station time the cuff was first seen at target 0 (stamped by the supervisor's tick)."""
        self.residual_raised = False
        self.deflate_alarmed = False
        """A DEFLATE_UNCONFIRMED alarm is up for this cuff's own deflate."""
        self.residual_deflate_at: float | None = None
        self.target_set_at = 0.0
        self.leak_since: float | None = None
        self.occ_warned = False
        self.occ_limit_hit = False
        self.limit_deflate_at: float | None = None
        self._trace = [0.0] * TRACE_POINTS
        self._trace_pos = 0
        self._trace_len = 0
        self._trace_bucket = -1
        self._trace_cache: tuple[float, ...] = ()

    # ------------------------------------------------------------------ hot path

    def add_sample(self, pressure: float, now: float, occlusion_threshold: float) -> None:
        """One reading, stamped with the station clock's ``now``."""
        self.pressure = pressure
        self.samples += 1
        self.last_sample_at = now
        bucket = int(now * TRACE_HZ)
        if bucket != self._trace_bucket:
            self._trace_bucket = bucket
            pos = self._trace_pos
            self._trace[pos] = pressure
            self._trace_pos = pos + 1 if pos + 1 < TRACE_POINTS else 0
            if self._trace_len < TRACE_POINTS:
                self._trace_len += 1
            self._trace_cache = ()  # rebuilt lazily by trace()
        if pressure >= occlusion_threshold:
            below = self.below_since
            if self.occlusion_since is None or (below is not None and now - below >= REPERFUSION_S):
                self.occlusion_since = now
            self.below_since = None
        elif self.occlusion_since is not None:
            below = self.below_since
            if self.target <= 0 or (below is not None and now - below >= REPERFUSION_S):
                # vented on purpose, or under the threshold long enough to be a real release
                self.occlusion_since = None
                self.below_since = None
            elif below is None:
                self.below_since = now

    # ------------------------------------------------------------------ views

    def trace(self) -> tuple[float, ...]:
        """The last 10 s at 10 points a second, oldest first (built once per new point)."""
        if not self._trace_cache and self._trace_len:
            n, pos = self._trace_len, self._trace_pos
            if n < TRACE_POINTS:
                self._trace_cache = tuple(self._trace[:n])
            else:
                self._trace_cache = tuple(self._trace[pos:] + self._trace[:pos])
        return self._trace_cache

    def occlusion_s(self, now: float) -> float:
        since = self.occlusion_since
        if since is None:
            return 0.0
        below = self.below_since
        if below is not None and now - below >= REPERFUSION_S:
            return 0.0  # released long enough; the next sample ends the episode
        return max(0.0, now - since)

    def pct_lop(self, mmhg: float | None) -> float | None:
        if mmhg is None or not self.lop:
            return None
        return 100.0 * mmhg / self.lop

    def allowed_max(self) -> float:
        """Highest target this cuff may get from its LOP, or the no-LOP limit of its limb."""
        if self.lop:
            return self.lop * self.spec.max_pct_lop / 100.0
        return self.spec.max_mmhg_without_lop

    def new_target(self, mmhg: float, now: float) -> None:
        """The target changed: the off-target rule waits until the pressure gets there."""
        if mmhg != self.target:
            self.target = mmhg
            self.armed = False
            self.reached = False
            self.target_set_at = now
            self.off_since = None
            self.deflated_at = None if mmhg > 0 else self.deflated_at

    def reset_live(self) -> None:
        """Forget what the controller said (link lost): nothing stale is shown as live."""
        self.pressure = None
        self.ctrl_state = None
        self.duty = 0
        self.off_since = None
        self.leak_since = None
