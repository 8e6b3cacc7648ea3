"""The CUFF-LINK/1 codec: CRC, framing, drop rules, every message round-trips."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers import codec
from drivers.codec import Command, Err, Event, LineReader, Ok, Sample, Status


def test_crc_check_value() -> None:
    assert codec.crc16(b"123456789") == 0x29B1


def test_frame_matches_protocol_example() -> None:
    line = codec.encode_command(1, "HELLO")
    assert line == b"#1 HELLO*%04X\n" % codec.crc16(b"#1 HELLO")
    assert LineReader().feed(line) == ["#1 HELLO"]


def test_cr_before_lf_is_ignored() -> None:
    line = codec.frame("#4 SET 1 160")[:-1] + b"\r\n"
    assert LineReader().feed(line) == ["#4 SET 1 160"]


def test_drop_rules_are_counted() -> None:
    reader = LineReader()
    good = codec.frame("#2 PING")
    bad_crc = good.replace(good[-5:-1], b"0000" if good[-5:-1] != b"0000" else b"1111")
    no_crc = b"#3 PING\n"
    bad_byte = b"#3 P\x01NG*%04X\n" % codec.crc16(b"#3 P\x01NG")
    lower_hex = codec.frame("#5 PING").lower()
    too_long = b"S 1 " + b"1" * 200 + b"\n"
    out = reader.feed(bad_crc + no_crc + bad_byte + lower_hex + too_long + good)
    assert out == ["#2 PING"]
    assert reader.drops.bad_crc == 3
    assert reader.drops.bad_bytes == 1
    assert reader.drops.too_long == 1


def test_too_long_line_split_across_reads_is_discarded_up_to_lf() -> None:
    reader = LineReader()
    assert reader.feed(b"X" * 150) == []
    assert reader.feed(b"Y" * 150) == []
    assert reader.drops.too_long == 1
    assert reader.feed(b"ZZ\n" + codec.frame("#7 PING")) == ["#7 PING"]
    assert reader.drops.too_long == 1


def test_line_split_byte_by_byte() -> None:
    reader = LineReader()
    out: list[str] = []
    for b in codec.frame("S 100 182.5 0"):
        out += reader.feed(bytes([b]))
    assert out == ["S 100 182.5 0"]


def test_body_limits_enforced_when_framing() -> None:
    codec.frame("x" * 100)
    for bad in ("x" * 101, "a*b", "a\tb"):
        try:
            codec.frame(bad)
        except ValueError:
            continue
        raise AssertionError(f"framed {bad!r}")


def test_pressure_format() -> None:
    assert [codec.format_pressure(p) for p in (0, 40, 182.5, 182.45, 0.04, 300)] == [
        "0",
        "40",
        "182.5",
        "182.4",
        "0",
        "300",
    ]


def test_malformed_content_with_good_crc() -> None:
    for body in ("S", "S x 1", "C 1 FLYING 0 0", "#0 OK", "#1 MAYBE", "E", "Q 1", "S 1  2"):
        try:
            codec.parse_report(body)
        except codec.MalformedLine:
            continue
        raise AssertionError(f"parsed {body!r}")


# --------------------------------------------------------------------------- properties

pressures = st.integers(min_value=0, max_value=4000).map(lambda t: t / 10)
seqs = st.integers(min_value=1, max_value=65535)
token = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="*="), min_size=1, max_size=8
)
text = st.lists(token, max_size=3).map(" ".join)

messages = st.one_of(
    st.builds(Sample, st.integers(0, 2**32 - 1), st.lists(pressures, min_size=1, max_size=8).map(tuple)),
    st.builds(Status, st.integers(1, 8), st.sampled_from(sorted(codec.CHANNEL_STATES)), pressures, st.integers(0, 100)),
    st.builds(Event, st.sampled_from(sorted(codec.EVENT_CODES)), st.one_of(st.none(), st.integers(1, 8)), text),
    st.builds(Ok, seqs, st.dictionaries(token, token.map(lambda s: s.replace("=", "")), max_size=4)),
    st.builds(Err, seqs, st.sampled_from(sorted(codec.ERR_CODES)), text),
)


@given(messages)
def test_every_report_round_trips(msg: codec.Report) -> None:
    line = codec.encode(msg)
    bodies = LineReader().feed(line)
    assert len(bodies) == 1
    assert codec.parse_report(bodies[0]) == msg


@given(seqs, st.sampled_from(sorted(codec.VERBS)), st.lists(token, max_size=3))
def test_every_command_round_trips(seq: int, verb: str, args: list[str]) -> None:
    msg = Command(seq, verb, tuple(args))
    (body,) = LineReader().feed(codec.encode(msg))
    assert codec.parse_command(body) == msg


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300), max_size=6))
def test_random_bytes_never_raise_nor_pass_a_bad_crc(chunks: list[bytes]) -> None:
    reader = LineReader()
    stream = b"".join(chunks)
    for chunk in chunks:
        for body in reader.feed(chunk):
            raw = body.encode("ascii")
            assert len(raw) <= codec.MAX_BODY and b"*" not in raw
            # Every body handed up stood on the wire with its own, matching CRC.
            assert raw + b"*%04X" % codec.crc16(raw) in stream
            try:
                codec.parse_report(body)
            except codec.MalformedLine:
                pass


@given(messages, st.binary(max_size=120))
def test_garbage_then_good_line_resyncs(msg: codec.Report, garbage: bytes) -> None:
    reader = LineReader()
    reader.feed(garbage.replace(b"\n", b"") + b"\n")
    assert [codec.parse_report(b) for b in reader.feed(codec.encode(msg))] == [msg]


SAMPLE_BODIES = [
    "S 1 0.0",
    "S 123456 120.5 -3.2 0 17",
    "S 0 1 2 3 4 5 6 7 8",
    "S 007 002.50",
    "S 4294967295 -0.0",
    "S 1",
    "S",
    "S  1 2",
    "S 1 2 ",
    "S 1 .5",
    "S 1 5.",
    "S 1 +5",
    "S -1 5",
    "S x 5",
    "S 1 5e3",
    "S 1 nan",
    "S 1 inf",
    "S 1 1_000",
    "S 1 ١٢",
    "SX 1 2",
]


@pytest.mark.parametrize("body", SAMPLE_BODIES)
def test_the_one_match_sample_path_parses_as_the_field_by_field_path(
    body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S lines are parsed with one regex match (the 100 Hz hot path): same answers, same refusals."""

    def outcome() -> object:
        try:
            return codec.parse_report(body)
        except codec.MalformedLine:
            return "malformed"

    fast = outcome()
    monkeypatch.setattr(codec, "_WELL_FORMED_SAMPLE", re.compile(r"(?!)"))  # never matches: fields only
    assert fast == outcome()


@given(st.text(alphabet="S 0123456789.-+e", min_size=1, max_size=40))
@settings(max_examples=400, deadline=None)
def test_any_s_line_gets_the_same_answer_on_both_paths(body: str) -> None:
    def outcome(rx: re.Pattern[str]) -> object:
        keep = codec._WELL_FORMED_SAMPLE
        codec._WELL_FORMED_SAMPLE = rx
        try:
            return codec.parse_report(body)
        except codec.MalformedLine:
            return "malformed"
        finally:
            codec._WELL_FORMED_SAMPLE = keep

    assert outcome(codec._WELL_FORMED_SAMPLE) == outcome(re.compile(r"(?!)"))
