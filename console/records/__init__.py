"""The station's SQLite records (schema, writer thread, rows) and the reports made from them.

Knows no Textual and no serial port; the station hands it rows, screens and the CLI read them.
"""
