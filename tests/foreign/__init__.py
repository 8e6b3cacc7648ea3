"""A CUFF-LINK/1 controller written by "someone else", from ``shared/protocol.md`` alone.

The console's own emulator was written with the console; this one was not. It runs on a pty
in a thread of its own (:mod:`tests.foreign.pty_serve`) so the real station can be tried
against a controller, and a limb, it was not written with: ``python -m tests.foreign`` serves
one standalone and prints ``PORT <path>``.
"""
