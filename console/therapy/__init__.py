"""What makes it BFR: LOP measurement, the plan library, the set/rep session runner, the rep count.

Therapy drives cuffs only through the engine (``console.station``), which keeps every limit; it never
talks to a link or a controller itself.
"""
