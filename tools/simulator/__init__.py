"""`flk simulate`: a deterministic synthetic region that produces the events an EHR, the
population register, the ACG run, the roster and the municipalities would (see
``tools.simulator.generate``), with sinks for Kafka and for files (``tools.simulator.sinks``).
The realism knobs and their documented defaults are in ``tools.simulator.settings``.
"""
