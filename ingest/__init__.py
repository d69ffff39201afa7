"""Ingest: cameras and files → sampled, gated JPEG frames on the frames topic.

`ingest.service.run(settings, stop)` is the `sightline ingest` process.
"""
