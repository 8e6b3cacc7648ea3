"""What every layer shares: the StationHandle protocol, the snapshot records, the clock, shared facts.

A leaf: it imports nothing else of ours, so the engine, therapy, records, remote and the UI may all
import it without a cycle.
"""
