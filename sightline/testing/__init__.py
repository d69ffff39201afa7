"""Test doubles and kits for Sightline's own tests and for users' tests.

`plugin` is the pytest plugin (registered for every pytest run where Sightline is installed, so
it imports nothing heavy until its fixture is used); `scripted_server` and `scripted_scenario`
are an OpenAI-compatible GLM-4.5V stand-in; `tiny_checkpoint` builds a tiny random
GLM-4.5V-architecture checkpoint offline; `ingest_kit` and `rtsp_server` drive ingest;
`messages` builds sample contract messages.
"""
