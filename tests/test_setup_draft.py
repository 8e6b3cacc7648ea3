"""Editing the drafted cuffs: what the setup screen's cuff dialog applies, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config.loader import ConfigError
from console.setup import draft as drafting
from console.setup.scan import PortReport
from drivers.link_errors import HelloInfo


def info(serial: str, channels: int) -> HelloInfo:
    return HelloInfo(1, "EMU-4", "1.0", serial, channels, 300.0, (10, 100))


def two_controllers() -> drafting.Draft:
    return drafting.draft_from([PortReport("/dev/ttyACM0", info("S1", 2)), PortReport("/dev/ttyACM1", info("S2", 1))])


def edit(d: drafting.Draft, cid: str, **kw: str) -> None:
    c = next(c for c in d.cuffs if c.id == cid)
    fields = {"new_id": c.id, "limb": c.limb, "label": c.label, "width": "", "pair": c.pair or ""} | kw
    drafting.edit_cuff(d, cid, **fields)


def test_pairs_are_mutual_and_follow_a_rename() -> None:
    d = two_controllers()
    assert [c.id for c in d.cuffs] == ["A1", "A2", "B1"]
    edit(d, "A1", new_id="LT", pair="A2", width="11.5", label="left thigh")
    assert {c.id: c.pair for c in d.cuffs} == {"LT": "A2", "A2": "LT", "B1": None}
    edit(d, "A2", pair="B1")  # re-paired: the old partner is released
    assert {c.id: c.pair for c in d.cuffs} == {"LT": None, "A2": "B1", "B1": "A2"}
    edit(d, "B1", new_id="RT")
    assert {c.id: c.pair for c in d.cuffs} == {"LT": None, "A2": "RT", "RT": "A2"}


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"new_id": "left thigh"}, "one word"),
        ({"new_id": "A2"}, "named A2 already"),
        ({"limb": "foot"}, '"leg" or "arm"'),
        ({"width": "wide"}, "number of cm"),
        ({"width": "90"}, "2 to 40"),
        ({"pair": "A1"}, "itself"),
        ({"pair": "Z9"}, "No cuff is named Z9"),
    ],
)
def test_a_wrong_field_is_refused_with_a_sentence_and_changes_nothing(kw: dict[str, str], says: str) -> None:
    d = two_controllers()
    before = [(c.id, c.limb, c.width_cm, c.pair) for c in d.cuffs]
    with pytest.raises(ValueError, match=says):
        edit(d, "A1", **kw)
    assert [(c.id, c.limb, c.width_cm, c.pair) for c in d.cuffs] == before


def test_extending_a_config_keeps_its_cuffs_and_avoids_their_names(tmp_path: Path) -> None:
    running = tmp_path / "config.toml"
    running.write_text(
        '[station]\nname = "Bay B"\n[[controllers]]\nid = "A"\nport = "emulator"\n'
        '[[cuffs]]\nid = "A1"\ncontroller = "A"\nchannel = 1\nlimb = "arm"\n'
    )
    extend = drafting.read_hardware(running)
    d = drafting.draft_from([PortReport("/dev/ttyACM3", info("NEW", 2))], drafting.taken_ids(extend))
    assert [c.id for c in d.controllers] == ["B"]
    target = tmp_path / "config.new.toml"
    config = drafting.check(drafting.render(drafting.document(d, drafting.read_kept(running), extend)), target)
    assert config.station.name == "Bay B"
    assert [c.id for c in config.cuffs] == ["A1", "B1", "B2"]
    assert config.controller("B").serial == "NEW"


def test_a_draft_the_console_would_refuse_is_not_accepted(tmp_path: Path) -> None:
    d = two_controllers()
    d.cuffs[0].channel = 5  # beyond the controller's 2 channels
    with pytest.raises(ConfigError, match="channel 5"):
        drafting.check(drafting.render(drafting.document(d)), tmp_path / "x.toml")
