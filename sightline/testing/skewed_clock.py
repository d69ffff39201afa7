"""Run a Sightline verb with this process's wall clock off by N seconds (tests only).

    python -m sightline.testing.skewed_clock SECONDS ingest --bootstrap HOST:PORT

`time.time` and `datetime.now`/`utcnow` are shifted before anything else is imported, so every
timestamp the process writes (status `ts`, `FrameMeta.wall_ts`, Kafka record timestamps) is off,
as on a host whose clock drifted. The monotonic clock is left alone, as a skewed host's is.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time


def skew(seconds: float) -> None:
    real_time = time.time

    def skewed_time() -> float:
        return real_time() + seconds

    class SkewedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> SkewedDatetime:
            return cls.fromtimestamp(skewed_time(), tz)

        @classmethod
        def utcnow(cls) -> SkewedDatetime:
            return cls.fromtimestamp(skewed_time(), _dt.UTC).replace(tzinfo=None)

    time.time = skewed_time
    _dt.datetime = SkewedDatetime  # type: ignore[misc]


def main() -> int:
    skew(float(sys.argv[1]))
    from sightline.cli import main as cli  # imported after the skew: its modules see the shifted clock

    return cli(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
