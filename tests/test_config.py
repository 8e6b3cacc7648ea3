"""Config loading: the shipped file, defaults, and every mistake refused with file, key and expectation."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from console.common.api import Role
from console.config.loader import (
    ConfigError,
    default_config_path,
    dump_config,
    load_config,
    parse_config,
)
from console.config.schema import EmulatorConfig, RoleRule, SafetyConfig, StationConfig
from console.therapy.plan_library import BUILTIN_PLANS

REPO = Path(__file__).resolve().parent.parent

MINIMAL = """
[[controllers]]
id = "rack"
port = "/dev/ttyACM0"

[[cuffs]]
id = "A1"
controller = "rack"
channel = 1
limb = "leg"
"""

CUFF = """
[[cuffs]]
id = "{id}"
controller = "{ctl}"
channel = {ch}
limb = "{limb}"
{extra}
"""


def cuff(id: str, ch: int, ctl: str = "rack", limb: str = "leg", extra: str = "") -> str:
    return CUFF.format(id=id, ctl=ctl, ch=ch, limb=limb, extra=extra)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refuse(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert str(err) == "\n".join(err.problems)
    for line in err.problems:
        assert line.startswith(f"{path}: "), line
    return err


def problem(err: ConfigError, key: str) -> str:
    """The one problem line about ``key`` (text after the file name and key)."""
    hits = [p for p in err.problems if p.split(": ", 2)[1] == key]
    assert len(hits) == 1, f"expected one problem at {key}, got: {err.problems}"
    return hits[0].split(": ", 2)[2]


# ------------------------------------------------------------------ good configs


def test_shipped_config_loads() -> None:
    config = load_config(REPO / "config.toml")
    assert config.station.name == "Bay A"
    assert [c.id for c in config.controllers] == ["A", "B"]
    assert all(c.is_emulator and c.channels == 2 for c in config.controllers)
    lops = [c.emulator.lop for c in config.controllers if c.emulator]
    seeds = {c.emulator.seed for c in config.controllers if c.emulator}
    assert lops[0] != lops[1] and len(seeds) == 2
    assert [(c.id, c.controller, c.channel, c.limb) for c in config.cuffs] == [
        ("A1", "A", 1, "leg"),
        ("A2", "A", 2, "leg"),
        ("B1", "B", 1, "arm"),
        ("B2", "B", 2, "arm"),
    ]
    assert config.partner("A1").id == "A2" and config.partner("A2").id == "A1"
    assert config.partner("B1") is None
    assert set(BUILTIN_PLANS) < set(config.plans)
    assert config.station.data_dir == REPO / "var"
    assert config.path == REPO / "config.toml"


def test_default_path_is_repo_config_unless_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BFR_CONFIG", raising=False)
    assert default_config_path() == REPO / "config.toml"
    other = write(tmp_path, MINIMAL, "other.toml")
    monkeypatch.setenv("BFR_CONFIG", str(other))
    assert default_config_path() == other
    assert load_config(default_config_path()).controllers[0].id == "rack"


def test_minimal_shape_runs_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.safety == SafetyConfig()
    assert config.station.name == "BFR station" and config.station.ceiling_mmhg == 300.0
    assert config.alarms.silence_max_s == 120.0 and config.alarms.bell is True
    assert config.ui.theme == "auto" and config.ui.fps == 20
    rack = config.controller("rack")
    assert (rack.port, rack.watchdog_ms, rack.stream_hz, rack.channels, rack.emulator) == (
        "/dev/ttyACM0",
        1000,
        100,
        4,
        None,
    )
    a1 = config.cuff("A1")
    assert (a1.label, a1.lop, a1.pair, a1.max_pct_lop) == ("", None, None, None)
    assert config.roles == ()
    assert config.plans == BUILTIN_PLANS
    limits = config.limits("A1")
    assert (limits.max_pct_lop, limits.occlusion_warn_s, limits.occlusion_limit_s) == (90.0, 900.0, 1200.0)


def test_emulator_defaults(tmp_path: Path) -> None:
    text = MINIMAL.replace('"/dev/ttyACM0"', '"emulator"')
    config = load_config(write(tmp_path, text))
    assert config.controller("rack").emulator == EmulatorConfig()
    assert config.controller("rack").emulator.lop == (160.0, 185.0, 210.0, 235.0)
    text = text.replace('port = "emulator"', 'port = "emulator"\nchannels = 6')
    emu = load_config(write(tmp_path, text)).controller("rack").emulator
    assert emu is not None and emu.channels == 6 and len(emu.lop) == 6 and all(100 <= x <= 300 for x in emu.lop)


def test_relative_paths_resolve_against_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = '[station]\ndata_dir = "records"\nsocket = "/run/bfr/bfr.sock"\n' + MINIMAL
    config = load_config(write(site, text))
    assert config.station.data_dir == site / "records"
    assert config.station.socket == Path("/run/bfr/bfr.sock")
    config = load_config(Path("..") / "site" / "config.toml")
    assert config.station.data_dir == site / "records"
    assert config.path == site / "config.toml"


def test_per_cuff_overrides_and_plan_refusals(tmp_path: Path) -> None:
    extra = "max_pct_lop = 45.0\nocclusion_warn_s = 300.0\nocclusion_limit_s = 600.0\nlop = 140.0"
    text = MINIMAL + cuff("B1", 2, limb="arm", extra=extra)
    config = load_config(write(tmp_path, text))
    limits = config.limits("B1")
    assert (limits.max_pct_lop, limits.occlusion_warn_s, limits.occlusion_limit_s) == (45.0, 300.0, 600.0)
    assert config.cuff("B1").lop == 140.0
    assert "for a leg" in (config.plan_refusal("legs-30-15", "B1") or "")
    assert "at most 45 % LOP" in (config.plan_refusal("arms-30-15", "B1") or "")  # plan asks 50
    assert config.plan_refusal("arms-30-15", "A1") is not None  # arm plan on a leg
    assert config.plan_refusal("legs-30-15", "A1") is None
    assert config.plan_refusal("ipc", "B1") is None  # full occlusion may exceed the everyday max
    assert "No plan" in (config.plan_refusal("nope", "A1") or "")


def test_roles_are_read_in_order(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[roles]]
group = "therapists"
role = "operator"

[[roles]]
user = "bob"
role = "observer"
"""
    )
    config = load_config(write(tmp_path, text))
    assert config.roles == (
        RoleRule(role=Role.OPERATOR, group="therapists"),
        RoleRule(role=Role.OBSERVER, user="bob"),
    )


def test_user_plans_add_and_override(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
[[plans]]
id = "legs-30-15"
name = "Our legs"
limb = "leg"
pct_lop = 70
sets = [30, 15, 15, 15]

[[plans]]
id = "mine"
pct_lop = 40
mode = "cycles"
on_s = 60
off_s = 60
cycles = 3
"""
    )
    config = load_config(write(tmp_path, text))
    assert config.plans["legs-30-15"].name == "Our legs" and config.plans["legs-30-15"].pct_lop == 70.0
    assert config.plans["mine"].cycles == 3
    assert config.plans["ipc"] == BUILTIN_PLANS["ipc"]


def test_dump_round_trips(tmp_path: Path) -> None:
    config = load_config(REPO / "config.toml")
    text = dump_config(config)
    again = parse_config(tomllib.loads(text), str(config.path), base_dir=config.path.parent)
    assert again == config
    # a generated config is a new file, loadable on its own
    out = write(tmp_path, text, "generated.toml")
    assert load_config(out).cuffs == config.cuffs


def test_parse_config_names_the_source() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"controllers": []}, "scan.toml")
    assert info.value.problems[0].startswith("scan.toml: controllers: ")
    assert isinstance(parse_config(tomllib.loads(MINIMAL), "/x/y.toml"), StationConfig)


# ------------------------------------------------------------------ file-level mistakes


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: file not found (looked for {path})"]


def test_toml_syntax_error_reports_line(tmp_path: Path) -> None:
    err = refuse(tmp_path, '[station]\nname = "Bay A"\nceiling_mmhg = \n')
    assert len(err.problems) == 1
    assert ": line 3, column " in err.problems[0] and "TOML syntax error" in err.problems[0]


def test_duplicate_key_is_a_syntax_error_with_line(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + "channel = 2\n")
    assert ": line 11, column " in err.problems[0]  # the repeated "channel ="


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[station]\nname = "Bay \xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 2: not UTF-8" in str(info.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


# ------------------------------------------------------------------ one test per mistake


def test_unknown_top_level_key_has_a_hint(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + "[saftey]\ngrace_s = 1.0\n")
    msg = problem(err, "saftey")
    assert 'did you mean "safety"?' in msg and "controllers, cuffs" in msg


def test_unknown_cuff_key_has_a_hint(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 2, extra="chanel = 2"))
    assert 'did you mean "channel"?' in problem(err, "cuffs[1].chanel")


def test_unknown_station_key_lists_valid_ones(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[station]\nceiling = 250\n" + MINIMAL)
    msg = problem(err, "station.ceiling")
    assert 'did you mean "ceiling_mmhg"?' in msg and "occlusion_threshold_mmhg" in msg


def test_type_error_channel_as_string(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace("channel = 1", 'channel = "1"'))
    assert problem(err, "cuffs[0].channel") == 'expected an integer from 1 to 8, found a string ("1")'


def test_type_error_number_and_bool(tmp_path: Path) -> None:
    err = refuse(tmp_path, '[station]\nceiling_mmhg = "high"\n[alarms]\nbell = "yes"\n' + MINIMAL)
    assert "expected a number above 0 and at most 300 mmHg" in problem(err, "station.ceiling_mmhg")
    assert problem(err, "alarms.bell") == 'expected true or false, found a string ("yes")'


def test_type_error_table_instead_of_array(tmp_path: Path) -> None:
    text = '[[controllers]]\nid = "rack"\nport = "/dev/ttyACM0"\n[cuffs]\nid = "A1"\n'
    assert problem(refuse(tmp_path, text), "cuffs") == "expected an array of tables ([[cuffs]]), found a table"


def test_float_channel_is_refused(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace("channel = 1", "channel = 1.0"))
    assert "found a number (1.0)" in problem(err, "cuffs[0].channel")


def test_cuff_naming_unknown_controller(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 1, ctl="rak"))
    assert problem(err, "cuffs[1].controller") == 'no controller "rak" (controllers defined: "rack")'


def test_channel_beyond_real_port_default(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 2) + cuff("A3", 5))
    assert problem(err, "cuffs[2].channel") == 'channel 5 is beyond controller "rack", which has 4 channels'


def test_channel_beyond_declared_channels(tmp_path: Path) -> None:
    text = MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nchannels = 2') + cuff("A3", 3)
    assert "which has 2 channels" in problem(refuse(tmp_path, text), "cuffs[1].channel")


def test_channel_beyond_emulator_channels(tmp_path: Path) -> None:
    text = MINIMAL.replace('"/dev/ttyACM0"', '"emulator"\n[controllers.emulator]\nchannels = 1\nlop = [180]')
    err = refuse(tmp_path, text + cuff("A2", 2))
    assert problem(err, "cuffs[1].channel") == 'channel 2 is beyond controller "rack", which has 1 channel'


def test_channel_out_of_protocol_range(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace("channel = 1", "channel = 9"))
    assert problem(err, "cuffs[0].channel") == "expected an integer from 1 to 8, found 9"


def test_two_cuffs_on_one_channel(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 1))
    assert problem(err, "cuffs[1].channel") == 'controller "rack" channel 1 is already used by cuff "A1"'


def test_ceiling_above_hard_cap(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[station]\nceiling_mmhg = 350\n" + MINIMAL)
    assert problem(err, "station.ceiling_mmhg") == "expected a number above 0 and at most 300 mmHg, found 350"


def test_pressure_above_station_ceiling(tmp_path: Path) -> None:
    text = "[station]\nceiling_mmhg = 200\n[safety]\nmax_mmhg_without_lop_leg = 250\n" + MINIMAL
    text += cuff("A2", 2, extra="lop = 240.0")
    err = refuse(tmp_path, text)
    assert "250 mmHg is above the station ceiling (station.ceiling_mmhg = 200 mmHg)" == problem(
        err, "safety.max_mmhg_without_lop_leg"
    )
    assert "240 mmHg is above the station ceiling" in problem(err, "cuffs[1].lop")


def test_the_no_lop_limit_is_per_limb_and_the_old_single_key_is_refused_with_its_replacement(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "[safety]\nmax_mmhg_without_lop_arm = 70\nmax_mmhg_without_lop_leg = 110\n" + MINIMAL)
    )
    assert (cfg.safety.max_mmhg_without_lop("arm"), cfg.safety.max_mmhg_without_lop("leg")) == (70.0, 110.0)
    assert SafetyConfig().max_mmhg_without_lop("arm") < SafetyConfig().max_mmhg_without_lop("leg")
    err = refuse(tmp_path, "[safety]\nmax_mmhg_without_lop = 120\n" + MINIMAL)
    assert "replaced by max_mmhg_without_lop_arm and max_mmhg_without_lop_leg" in problem(
        err, "safety.max_mmhg_without_lop"
    )


def test_zero_time_refused(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[safety]\ngrace_s = 0\n" + MINIMAL)
    assert problem(err, "safety.grace_s") == "expected a number above 0 and at most 10 s, found 0"


def test_negative_time_refused(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 2, extra="occlusion_limit_s = -60"))
    assert "above 0" in problem(err, "cuffs[1].occlusion_limit_s") and "found -60" in problem(
        err, "cuffs[1].occlusion_limit_s"
    )


def test_occlusion_limit_never_over_20_min(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[safety]\nocclusion_limit_s = 1500\n" + MINIMAL)
    assert "at most 1200 s, found 1500" in problem(err, "safety.occlusion_limit_s")


def test_warning_must_come_before_limit(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[safety]\nocclusion_warn_s = 1200\n" + MINIMAL)
    assert problem(err, "safety.occlusion_warn_s") == "expected below safety.occlusion_limit_s (1200 s), found 1200"


def test_per_cuff_limit_below_global_warning(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 2, extra="occlusion_limit_s = 600"))
    assert "warning (900 s from safety.occlusion_warn_s) must come before the limit (600 s)" in problem(
        err, "cuffs[1].occlusion_limit_s"
    )


def test_pct_out_of_range(tmp_path: Path) -> None:
    err = refuse(tmp_path, "[safety]\nmax_pct_lop_leg = 120\n" + MINIMAL + cuff("A2", 2, extra="max_pct_lop = 5"))
    assert problem(err, "safety.max_pct_lop_leg") == "expected a number from 10 to 100 % LOP, found 120"
    assert problem(err, "cuffs[1].max_pct_lop") == "expected a number from 10 to 100 % LOP, found 5"


def test_duplicate_cuff_id(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A1", 2))
    assert problem(err, "cuffs[1].id") == 'duplicate cuff id "A1" (ids must be unique)'


def test_duplicate_controller_id(tmp_path: Path) -> None:
    text = MINIMAL + '[[controllers]]\nid = "rack"\nport = "/dev/ttyACM1"\n'
    assert problem(refuse(tmp_path, text), "controllers[1].id") == 'duplicate controller id "rack" (ids must be unique)'


def test_limb_not_arm_or_leg(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('limb = "leg"', 'limb = "thigh"'))
    assert problem(err, "cuffs[0].limb") == 'expected "arm" or "leg", found a string ("thigh")'


def test_required_key_missing(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('limb = "leg"', ""))
    assert problem(err, "cuffs[0].limb") == 'missing (expected "arm" or "leg")'


def test_no_controllers_or_cuffs(tmp_path: Path) -> None:
    err = refuse(tmp_path, '[station]\nname = "x"\n')
    assert "at least one [[controllers]]" in problem(err, "controllers")
    assert "at least one [[cuffs]]" in problem(err, "cuffs")


def test_bad_port(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('"/dev/ttyACM0"', '"ttyACM0"'))
    assert 'found "ttyACM0"' in problem(err, "controllers[0].port")


def test_socket_port_accepted_and_bad_one_refused(tmp_path: Path) -> None:
    good = load_config(write(tmp_path, MINIMAL.replace('"/dev/ttyACM0"', '"socket://127.0.0.1:7000"')))
    assert good.controller("rack").port == "socket://127.0.0.1:7000"
    err = refuse(tmp_path, MINIMAL.replace('"/dev/ttyACM0"', '"socket://127.0.0.1"'))
    assert "socket://host:port" in problem(err, "controllers[0].port")


def test_same_port_twice(tmp_path: Path) -> None:
    text = MINIMAL + '[[controllers]]\nid = "rack2"\nport = "/dev/ttyACM0"\n'
    msg = problem(refuse(tmp_path, text), "controllers[1].port")
    assert msg == '"/dev/ttyACM0" is already used by controller "rack"'


def test_two_ports_naming_one_device_are_refused(tmp_path: Path) -> None:
    """A /dev/serial/by-id symlink and its /dev/ttyACM0 target are one port: two links would fight over it."""
    device = tmp_path / "ttyACM0"
    device.write_text("")
    by_id = tmp_path / "usb-cuff-if00"
    by_id.symlink_to(device)
    text = (
        f'[[controllers]]\nid = "arm"\nport = "{device}"\n'
        f'[[controllers]]\nid = "leg"\nport = "{by_id}"\n' + cuff("A1", 1, ctl="arm") + cuff("L1", 1, ctl="leg")
    )
    err = refuse(tmp_path, text)
    assert len(err.problems) == 1
    assert problem(err, "controllers[1].port") == (
        f'"{by_id}" is the same device as controllers[0].port "{device}" (controller "arm"): '
        f"both resolve to {device}, and one port can serve only one controller"
    )
    # emulators and socket URLs name no device: several of them are fine
    text = (
        '[[controllers]]\nid = "e1"\nport = "emulator"\n[[controllers]]\nid = "e2"\nport = "emulator"\n'
        f'[[controllers]]\nid = "dev"\nport = "{by_id}"\n' + cuff("A1", 1, ctl="e1") + cuff("A2", 1, ctl="e2")
    )
    assert [c.id for c in load_config(write(tmp_path, text)).controllers] == ["e1", "e2", "dev"]


def test_controller_serial_is_pinned_and_round_trips(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL)).controller("rack").serial is None  # learned at first connect
    text = MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nserial = "CUFF-0042"')
    config = load_config(write(tmp_path, text))
    assert config.controller("rack").serial == "CUFF-0042"
    again = parse_config(tomllib.loads(dump_config(config)), str(config.path), base_dir=config.path.parent)
    assert again.controller("rack").serial == "CUFF-0042"


@pytest.mark.parametrize(
    "value,found",
    [
        ('""', "an empty one"),
        ('"CUFF 42"', '"CUFF 42"'),
        ('"ABCDEFGHIJKLMNOPQ"', '"ABCDEFGHIJKLMNOPQ"'),  # 17 characters
        ('"CUFF*42"', '"CUFF*42"'),
        ('"CUFF-\u00e942"', "CUFF-"),
        ("42", "42"),
    ],
)
def test_controller_serial_must_be_short_printable_and_without_spaces(tmp_path: Path, value: str, found: str) -> None:
    text = MINIMAL.replace('port = "/dev/ttyACM0"', f'port = "/dev/ttyACM0"\nserial = {value}')
    msg = problem(refuse(tmp_path, text), "controllers[0].serial")
    assert found in msg
    assert "1-16 printable characters" in msg or "string" in msg


def test_controller_serial_is_only_for_real_ports_and_only_once(tmp_path: Path) -> None:
    text = MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "emulator"\nserial = "CUFF-1"')
    assert problem(refuse(tmp_path, text), "controllers[0].serial") == (
        'only for a real port: the built-in emulator always answers as "EMU-rack"'
    )
    text = (
        MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nserial = "CUFF-1"')
        + '[[controllers]]\nid = "rack2"\nport = "/dev/ttyACM1"\nserial = "CUFF-1"\n'
    )
    assert problem(refuse(tmp_path, text), "controllers[1].serial") == (
        'serial "CUFF-1" is already pinned for controller "rack"'
    )


def test_watchdog_out_of_range(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nwatchdog_ms = 100'))
    assert problem(err, "controllers[0].watchdog_ms") == "expected an integer from 200 to 10000, found 100"


def test_stream_too_slow_for_link_timeout(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\nstream_hz = 2'))
    assert "expected at least 6 Hz" in problem(err, "controllers[0].stream_hz")


def test_emulator_table_only_with_emulator_port(tmp_path: Path) -> None:
    text = MINIMAL.replace('port = "/dev/ttyACM0"', 'port = "/dev/ttyACM0"\n[controllers.emulator]\nseed = 3')
    assert 'only allowed with port = "emulator"' in problem(refuse(tmp_path, text), "controllers[0].emulator")


def test_emulator_lop_per_channel(tmp_path: Path) -> None:
    text = MINIMAL.replace('"/dev/ttyACM0"', '"emulator"\n[controllers.emulator]\nchannels = 2\nlop = [150, 350, 200]')
    err = refuse(tmp_path, text)
    assert problem(err, "controllers[0].emulator.lop[1]") == "expected a number from 100 to 300 mmHg, found 350"
    text = text.replace("350, 200", "200, 210")
    assert problem(refuse(tmp_path, text), "controllers[0].emulator.lop") == (
        "expected one LOP per channel (2 values), found 3"
    )


def test_emulator_channels_disagree(tmp_path: Path) -> None:
    text = MINIMAL.replace('"/dev/ttyACM0"', '"emulator"\nchannels = 4\n[controllers.emulator]\nchannels = 2')
    assert "disagrees" in problem(refuse(tmp_path, text), "controllers[0].emulator.channels")


def test_pair_must_exist(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + cuff("A2", 2, extra='pair = "A9"'))
    assert 'no cuff "A9" to pair with' in problem(err, "cuffs[1].pair")


def test_pair_with_self(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL.replace('limb = "leg"', 'limb = "leg"\npair = "A1"'))
    assert problem(err, "cuffs[0].pair") == "a cuff cannot be paired with itself"


def test_pair_must_be_mutual_and_same_limb(tmp_path: Path) -> None:
    text = MINIMAL + cuff("A2", 2, extra='pair = "A1"') + cuff("A3", 3, extra='pair = "A1"')
    text = text.replace('limb = "leg"', 'limb = "leg"\npair = "A2"', 1)
    assert problem(refuse(tmp_path, text), "cuffs[2].pair") == 'cuff "A1" is paired with "A2", not with "A3"'
    text = MINIMAL + cuff("B1", 2, limb="arm", extra='pair = "A1"')
    assert "pairs share a limb type" in problem(refuse(tmp_path, text), "cuffs[1].pair")


def test_role_needs_exactly_one_of_user_or_group(tmp_path: Path) -> None:
    text = MINIMAL + '[[roles]]\nuser = "a"\ngroup = "b"\nrole = "operator"\n[[roles]]\nrole = "observer"\n'
    err = refuse(tmp_path, text)
    assert problem(err, "roles[0].user") == "expected exactly one of user or group, found both"
    assert problem(err, "roles[1].user") == "expected exactly one of user or group, found neither"


def test_role_value(tmp_path: Path) -> None:
    err = refuse(tmp_path, MINIMAL + '[[roles]]\nuser = "a"\nrole = "admin"\n')
    assert problem(err, "roles[0].role") == 'expected "operator" or "observer", found a string ("admin")'


def test_ui_and_alarm_ranges(tmp_path: Path) -> None:
    text = '[ui]\ntheme = "dark"\nfps = 0\n[alarms]\nsilence_max_s = 300\n' + MINIMAL
    err = refuse(tmp_path, text)
    assert problem(err, "ui.theme") == 'expected "auto", "textual-dark" or "ansi", found a string ("dark")'
    assert problem(err, "ui.fps") == "expected an integer from 1 to 60, found 0"
    assert "at most 120 s, found 300" in problem(err, "alarms.silence_max_s")


def test_bad_user_plan_named_by_id(tmp_path: Path) -> None:
    text = MINIMAL + '[[plans]]\nid = "legs-30-15"\npct_lop = 80\nsets = []\n'
    msg = problem(refuse(tmp_path, text), "plans.legs-30-15.sets")
    assert msg == "expected a non-empty array of integers from 1 to 100, found an empty array"


def test_user_plan_above_limb_max_needs_full_occlusion(tmp_path: Path) -> None:
    text = MINIMAL + '[[plans]]\nid = "hard"\nlimb = "arm"\npct_lop = 80\nsets = [10]\n'
    msg = problem(refuse(tmp_path, text), "plans.hard.pct_lop")
    assert "80 % LOP is above safety.max_pct_lop_arm (60 %)" in msg and "full_occlusion = true" in msg
    text = MINIMAL + (
        '[[plans]]\nid = "ipc-arm"\nlimb = "arm"\npct_lop = 100\nmode = "cycles"\n'
        "on_s = 300\noff_s = 300\ncycles = 3\nfull_occlusion = true\n"
    )
    assert load_config(write(tmp_path, text)).plans["ipc-arm"].full_occlusion


def test_user_plan_longer_than_station_occlusion_limit(tmp_path: Path) -> None:
    text = "[safety]\nocclusion_warn_s = 200\nocclusion_limit_s = 300\n" + MINIMAL
    text += '[[plans]]\nid = "long"\npct_lop = 50\nsets = [100, 100]\n'
    assert "beyond safety.occlusion_limit_s (300 s)" in problem(refuse(tmp_path, text), "plans.long.max_occlusion_s")


def test_duplicate_user_plan_ids(tmp_path: Path) -> None:
    plan = '[[plans]]\nid = "p"\npct_lop = 50\nsets = [10]\n'
    err = refuse(tmp_path, MINIMAL + plan + plan)
    assert problem(err, "plans[1].id") == 'duplicate plan id "p" (ids must be unique within [[plans]])'


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "[station]\nceiling_mmhg = 400\n[safety]\ngrace_s = -1\n"
        + MINIMAL.replace('limb = "leg"', 'limb = "foot"')
        + cuff("A1", 1)
        + cuff("A3", 7)
    )
    err = refuse(tmp_path, text)
    keys = sorted(p.split(": ", 2)[1] for p in err.problems)
    assert keys == [
        "cuffs[0].limb",
        "cuffs[1].channel",
        "cuffs[1].id",
        "cuffs[2].channel",
        "safety.grace_s",
        "station.ceiling_mmhg",
    ]


@pytest.mark.parametrize("text", ["Knee\x1b[2J", "left\tthigh", "a\nb", "x\x85y", "p\u2028q"])
def test_control_characters_in_config_text_are_refused(tmp_path: Path, text: str) -> None:
    """A label reaches every screen: an escape code would clear or garble the kiosk's display."""
    toml_text = MINIMAL.replace('limb = "leg"', f'limb = "leg"\nlabel = {json.dumps(text)}', 1)
    err = refuse(tmp_path, toml_text)
    assert "contains a control character" in problem(err, "cuffs[0].label")


def test_brackets_in_config_text_are_plain_text_and_accepted(tmp_path: Path) -> None:
    toml_text = MINIMAL.replace('limb = "leg"', 'limb = "leg"\nlabel = "Knee [/] [post-op]"', 1)
    cfg = load_config(write(tmp_path, toml_text))
    assert cfg.cuffs[0].label == "Knee [/] [post-op]"


def test_a_plan_description_may_span_lines_but_not_hold_escape_codes(tmp_path: Path) -> None:
    plan = '\n[[plans]]\nid = "mine"\nname = "Mine"\npct_lop = 50\nsets = [10]\ncadence_s = 2\nrest_s = 30\n'
    cfg = load_config(write(tmp_path, MINIMAL + plan + 'description = """two\nlines"""\n'))
    assert cfg.plans["mine"].description == "two\nlines"
    err = refuse(tmp_path, MINIMAL + plan + 'description = "bad\\u001b[0m"\n')
    assert any("contains a control character (U+001B)" in p for p in err.problems)
