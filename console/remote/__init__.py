"""Remote supervision: the station served on a Unix socket, and consoles that attach to it.

``serve_station(station, config)`` starts the server; ``attach(socket_path)``
gives a :class:`RemoteStation`, a ``StationHandle`` the UI uses unchanged.
"""

from __future__ import annotations

from console.remote.client import (
    AccessRefused,
    RemoteStation,
    StationUnavailable,
    attach,
)
from console.remote.server import StationServer, serve_station
from console.remote.socket_file import ServeError

__all__ = [
    "AccessRefused",
    "RemoteStation",
    "ServeError",
    "StationServer",
    "StationUnavailable",
    "attach",
    "serve_station",
]
