"""The commands a client may send over the socket: each StationHandle method, argument by argument.

The server checks every command against this table before it reaches the station: unknown
commands, missing or extra arguments and wrong types are refused with a sentence, and the
table says which commands an observer may send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from console.remote import protocol

NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    kinds: tuple[type, ...]
    required: bool = True
    nullable: bool = False
    item: type | None = None
    """For lists: the type of every item."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    args: tuple[Arg, ...]
    observer_ok: bool = False
    verb: str = ""
    """How the refusal names it: ``inflate a cuff``."""


COMMANDS: dict[str, CommandSpec] = {
    "emergency_deflate": CommandSpec((), observer_ok=True, verb="emergency-deflate"),
    "alarm_log": CommandSpec((Arg("limit", (int,), required=False),), observer_ok=True, verb="read the alarm log"),
    "inflate": CommandSpec(
        (
            Arg("cuff_id", (str,)),
            Arg("mmhg", NUMBER, required=False, nullable=True),
            Arg("pct_lop", NUMBER, required=False, nullable=True),
        ),
        verb="inflate a cuff",
    ),
    "nudge_target": CommandSpec((Arg("cuff_id", (str,)), Arg("delta_mmhg", NUMBER)), verb="change a target"),
    "deflate": CommandSpec((Arg("cuff_id", (str,)),), verb="deflate a cuff"),
    "acknowledge": CommandSpec((Arg("alarm_id", (int,), required=False, nullable=True),), verb="acknowledge alarms"),
    "silence": CommandSpec((Arg("seconds", NUMBER, required=False),), verb="silence alarms"),
    "set_lop": CommandSpec(
        (
            Arg("cuff_id", (str,)),
            Arg("lop", NUMBER),
            Arg("position", (str,)),
            Arg("cuff_width_cm", NUMBER, nullable=True),
            Arg("source", (str,), required=False),
        ),
        verb="set a LOP",
    ),
    "measure_lop": CommandSpec((Arg("cuff_id", (str,)), Arg("position", (str,), required=False)), verb="measure a LOP"),
    "set_patient": CommandSpec((Arg("cuff_id", (str,)), Arg("patient_id", (str,))), verb="assign a patient"),
    "start_session": CommandSpec(
        (
            Arg("cuff_ids", (list,), item=str),
            Arg("plan_id", (str,)),
            Arg("patient_id", (str,)),
        ),
        verb="start a session",
    ),
    "session_command": CommandSpec((Arg("cuff_id", (str,)), Arg("command", (str,))), verb="control a session"),
}
"""Every command a client may send: the StationHandle methods, argument by argument."""


def check_args(name: str, spec: CommandSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for the StationHandle method, or ValueError with a sentence for the client."""
    known = {a.name for a in spec.args}
    extra = sorted(set(args) - known)
    if extra:
        raise ValueError(f"{name} takes no argument {extra[0]!r}")
    kwargs: dict[str, Any] = {}
    for arg in spec.args:
        if arg.name not in args:
            if arg.required:
                raise ValueError(f"{name} needs {arg.name!r}")
            continue
        value: Any = args[arg.name]
        if value is None and arg.nullable:
            kwargs[arg.name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, arg.kinds):
            raise ValueError(f"{name}: {arg.name!r} must be {_kind_words(arg)}, not {value!r}")
        if arg.item is not None:
            items = cast(list[Any], value)  # a list: the kinds check above
            if not all(isinstance(v, arg.item) for v in items):
                raise ValueError(f"{name}: every item of {arg.name!r} must be a {arg.item.__name__}")
            value = list(items)
        if isinstance(value, float) and value != value:
            raise ValueError(f"{name}: {arg.name!r} must be a number, not NaN")
        kwargs[arg.name] = value
    return kwargs


def _kind_words(arg: Arg) -> str:
    if arg.kinds == NUMBER:
        return "a number"
    if arg.kinds == (list,):
        return "a list"
    return f"a {arg.kinds[0].__name__}"


def describe_command(name: str, args: dict[str, Any]) -> str:
    """The command as the audit trail shows it (arguments cut at 300 characters)."""
    if not args:
        return name
    text = json.dumps(args, separators=(",", ":"), sort_keys=True, default=str)
    return f"{name} {text[:300]}"


def failure_reply(cmd_id: int, sentence: str) -> dict[str, Any]:
    """The RESULT message of a refused or failed command."""
    return {"op": protocol.RESULT, "id": cmd_id, "ok": False, "error": sentence}


def failure_sentence(name: str, exc: BaseException) -> str:
    """What the client is told when the station raised something other than a refusal."""
    return f"the station could not {name.replace('_', ' ')}: {type(exc).__name__}: {exc}"
