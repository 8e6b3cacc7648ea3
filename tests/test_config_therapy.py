"""``[therapy] lop_max_age_days``: the clinic's re-measure interval, checked like every setting."""

from __future__ import annotations

import tomllib

import pytest

from console.config.loader import ConfigError, parse_config
from tests.test_config import MINIMAL


def test_the_re_measure_interval_defaults_to_14_days_and_is_read() -> None:
    assert parse_config(tomllib.loads(MINIMAL), "/x/y.toml").therapy.lop_max_age_days == 14.0
    cfg = parse_config(tomllib.loads(MINIMAL + "\n[therapy]\nlop_max_age_days = 7\n"), "/x/y.toml")
    assert cfg.therapy.lop_max_age_days == 7.0


@pytest.mark.parametrize("value", ["0", "-3", "400", '"two weeks"'])
def test_a_re_measure_interval_that_makes_no_sense_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(MINIMAL + f"\n[therapy]\nlop_max_age_days = {value}\n"), "/x/y.toml")
    assert any("therapy.lop_max_age_days" in p for p in info.value.problems), info.value.problems


def test_an_unknown_therapy_key_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(MINIMAL + "\n[therapy]\nlop_max_age = 7\n"), "/x/y.toml")
    assert any("lop_max_age" in p for p in info.value.problems)
