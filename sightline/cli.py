"""The `sightline` command. Verbs only parse arguments and hand over to the packages."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from configs import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["bus"] = {"bootstrap": args.bootstrap}
    if getattr(args, "host", None):
        overrides.setdefault("api", {})["host"] = args.host
    if getattr(args, "port", None):
        overrides.setdefault("api", {})["port"] = args.port
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"config error in {exc.source}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  - {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _call(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return fn


def _run_process(target: str, kind: str) -> Callable[[argparse.Namespace], int]:
    """A process verb: settings, logging, stop-on-signal, then the package's run()."""

    def run(args: argparse.Namespace) -> int:
        from bus.process import setup_logging, stop_on_signals, worker_id

        settings = _settings(args)
        setup_logging(settings.log_level, worker_id(kind))
        stop = stop_on_signals()
        result = _call(target)(settings, stop)
        return int(result or 0)

    return run


def cmd_up(args: argparse.Namespace) -> int:
    from sightline.runtime import up

    return up(_settings(args), sample=not args.no_sample)


def cmd_serve(args: argparse.Namespace) -> int:
    from bus.process import setup_logging, worker_id
    from dashboard.server import serve

    settings = _settings(args)
    setup_logging(settings.log_level, worker_id("api"))
    return serve(settings)


def cmd_config_validate(args: argparse.Namespace) -> int:
    try:
        s = load_settings(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.errors)} error(s)")
        for line in exc.errors:
            print(f"  - {line}")
        return 1
    print(
        f"{args.file}: ok (engine: {s.engine.type}, bus: {s.bus.bootstrap or 'embedded'}, "
        f"store: {s.store_url})"
    )
    return 0


def cmd_schema_export(args: argparse.Namespace) -> int:
    from bus.schema import export_schemas

    for path in export_schemas(args.dir):
        print(path)
    return 0


def cmd_engine_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    result: int = _call("glm45v_engine.check:main")(settings.engine, image=args.image, query=args.query)
    return result


def cmd_replay(args: argparse.Namespace) -> int:
    result: int = _call("sightline.replay:main")(args, _settings(args))
    return result


def cmd_bench(args: argparse.Namespace) -> int:
    targets = {
        "ingest": "ingest.bench:main",
        "ingest-soak": "ingest.bench:soak",
        "pipeline": "sightline.bench_pipeline:main",
        "gating": "sightline.bench_gating:main",
        "soak": "sightline.bench_soak:main",
    }
    result: int = _call(targets[args.what])(args, _settings(args))
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sightline", description=__doc__)
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn: Callable[[argparse.Namespace], int], help_: str, bootstrap: bool = True) -> Any:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", "-c", help="YAML config file or preset name (default, demo, production)")
        if bootstrap:
            sp.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides bus.bootstrap)")
        sp.set_defaults(fn=fn)
        return sp

    up = verb(
        "up", cmd_up, "run everything in one process tree: embedded broker, ingest, analyzer, sink, API"
    )
    up.add_argument("--host", help="API/dashboard address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="API/dashboard port (default 8000)")
    up.add_argument("--data-dir", help="where the store and snapshots live (default ./data)")
    up.add_argument("--no-sample", action="store_true", help="do not register the bundled sample camera")
    verb(
        "ingest",
        _run_process("ingest.service:run", "ingest"),
        "decode cameras and files into the frames topic",
    )
    verb(
        "analyze",
        _run_process("analyzer.service:run", "analyzer"),
        "ask the engine about frames; emit events",
    )
    verb(
        "sink", _run_process("sinks.service:run", "sink"), "write events, summaries and status into the store"
    )
    serve = verb("serve", cmd_serve, "serve the REST API and the dashboard")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    rp = verb("replay", cmd_replay, "replay a video file through ingest, analyzer and sink; score it")
    rp.add_argument("video")
    rp.add_argument("--query", action="append", default=[], help="grounding query (repeatable)")
    rp.add_argument("--summary", action="append", default=[], help="summary prompt (repeatable)")
    rp.add_argument("--sample-fps", type=float)
    rp.add_argument("--window-s", type=float, default=10.0, help="summary window length")
    rp.add_argument("--out", help="write ObjectEvent and Summary records as JSONL")
    rp.add_argument("--truth", help="ground truth (Sightline JSON or MOT gt.txt)")
    rp.add_argument("--min-recall", type=float)
    rp.add_argument("--min-precision", type=float)
    rp.add_argument("--no-progress", action="store_true")
    rp.add_argument(
        "--keep-latency", action="store_true", help="keep measured latencies in the JSONL (not reproducible)"
    )

    bp = verb("bench", cmd_bench, "benchmarks, printed as ratios against a baseline measured in the same run")
    bp.add_argument(
        "what",
        choices=["ingest", "ingest-soak", "pipeline", "gating", "soak"],
        help="ingest: decode/sampling rates; ingest-soak: N cameras in one ingest process; "
        "pipeline: latency through the broker; gating: engine calls saved by gating; "
        "soak: the full stack for minutes (RSS, fds, p99)",
    )
    # None: each bench picks its own default (pipeline 16 cameras × 20 s, soak 32 × 300 s).
    bp.add_argument("--cameras", type=int, default=None, help="default: the bench's own")
    bp.add_argument("--seconds", type=float, default=None, help="default: the bench's own")
    bp.add_argument("--engine-latency-ms", type=float, default=0.0)
    bp.add_argument("--concurrency", type=int, default=8)
    bp.add_argument("--video", help="input clip (default: generated)")
    bp.add_argument("--report", help="write the report here as JSON")

    cp = sub.add_parser("config", help="configuration tools")
    csub = cp.add_subparsers(dest="what", required=True)
    cv = csub.add_parser("validate", help="check a config file and print every error with its path")
    cv.add_argument("file")
    cv.set_defaults(fn=cmd_config_validate)

    sp = sub.add_parser("schema", help="message contracts")
    ssub = sp.add_subparsers(dest="what", required=True)
    se = ssub.add_parser("export", help="write the JSON Schema of every message kind to DIR")
    se.add_argument("dir", type=Path)
    se.set_defaults(fn=cmd_schema_export)

    ep = sub.add_parser("engine", help="engine tools")
    esub = ep.add_subparsers(dest="what", required=True)
    ec = esub.add_parser("check", help="send a probe image to the configured engine and print what came back")
    ec.add_argument("--config", "-c")
    ec.add_argument("--image", help="probe image (default: a generated one)")
    ec.add_argument("--query", default="people", help="grounding query to send")
    ec.set_defaults(fn=cmd_engine_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
