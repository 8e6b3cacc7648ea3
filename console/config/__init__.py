"""Reading, checking and writing the station's TOML config (tomllib in, tomli-w out).

A broken config is refused with the file, the key and what was expected, before any port opens.
"""
