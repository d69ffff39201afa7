"""Replay recorded video through Sightline's own code, deterministically.

`run` (in-process: ingest's camera worker → the analyzer's `FrameProcessor`), `broker` (the real
ingest and analyzer services on private topics), `cli` (the `sightline replay` verb), `scored`
(a replay with its scores against a ground truth, as the pytest plugin returns it).
"""
