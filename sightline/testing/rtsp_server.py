#!/usr/bin/python3
"""A small RTSP server for tests and benchmarks: rtsp://127.0.0.1:PORT/PATH, H.264 over RTP.

Runs with the system Python (GStreamer's `gi` cannot be imported in a venv):
  /usr/bin/python3 sightline/testing/rtsp_server.py --port 8554 [--file clip.mp4] [--fps 25] [--size 640x480]
Needs Debian python3-gi, gir1.2-gst-rtsp-server-1.0 and the gstreamer1.0 plugin packages.
Prints "READY <url>" once listening; SIGTERM/SIGINT stop it. Every client gets its own pipeline.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--file", help="file to serve once, in real time (default: endless test pattern)")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--user", help="require RTSP basic auth with this user (and --password)")
    ap.add_argument("--password", default="")
    a = ap.parse_args()

    import gi  # type: ignore[import-not-found, unused-ignore]

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer  # type: ignore[import-not-found, unused-ignore]

    Gst.init(None)
    w, h = a.size.split("x")
    enc = (
        f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={a.fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1"
    )
    if a.file:
        src = f'filesrc location="{a.file}" ! decodebin ! videoconvert ! video/x-raw,format=I420'
    else:
        caps = f"video/x-raw,width={w},height={h},framerate={a.fps}/1,format=I420"
        src = f"videotestsrc is-live=true pattern=ball ! {caps}"
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( {src} ! {enc} )")
    factory.set_shared(False)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(a.port))
    if a.user:
        # Only this user may see or build the stream; anyone else gets 401 Unauthorized.
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password), token)
        server.set_auth(auth)
        perms = "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        factory.add_role_from_structure(Gst.Structure.new_from_string(perms))
    server.get_mount_points().add_factory(a.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {a.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for s in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, s, loop.quit)
    print(f"READY rtsp://127.0.0.1:{a.port}{a.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
