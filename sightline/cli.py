"""The `sightline` command. Verbs only parse arguments and hand over to the packages.

Each verb imports what it runs inside its function, so `sightline --help` and the light verbs
do not load PyAV, FastAPI or the engine backends.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from configs import ConfigError, Settings, load_settings
from sightline.replay import cli as replay_cli

Verb = Callable[[argparse.Namespace], int]
ProcessRun = Callable[[Settings, threading.Event], int]


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
    overrides.update(getattr(args, "config_overrides", None) or {})
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"config error in {exc.source}:", file=sys.stderr)
        for line in exc.errors:
            print(f"  - {line}", file=sys.stderr)
        raise SystemExit(2) from None


def start_process(settings: Settings, worker: str) -> None:
    """What every Sightline process does first: private files, JSON logs, credentials masked in them."""
    from bus.redact import install_log_redaction
    from lifecycle.process import private_files, setup_logging

    private_files(settings.data_dir)
    setup_logging(settings.log_level, worker)
    install_log_redaction()


def _process(args: argparse.Namespace, kind: str, run: ProcessRun) -> int:
    """A process verb: settings, logging, stop-on-signal, then the package's run()."""
    from lifecycle.metrics import serve as serve_metrics
    from lifecycle.process import stop_on_signals, worker_id

    settings = _settings(args)
    start_process(settings, worker_id(kind))
    server = serve_metrics(settings.metrics, kind)  # off unless metrics.enabled
    try:
        return int(run(settings, stop_on_signals()) or 0)
    finally:
        if server is not None:
            server.close()


def cmd_up(args: argparse.Namespace) -> int:
    from sightline.runtime import up

    return up(_settings(args), sample=not args.no_sample)  # up() starts itself as start_process does


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.service import run

    return _process(args, "ingest", run)


def cmd_analyze(args: argparse.Namespace) -> int:
    from analyzer.service import run

    return _process(args, "analyzer", run)


def cmd_sink(args: argparse.Namespace) -> int:
    from sinks.service import run

    return _process(args, "sink", run)


def cmd_rules(args: argparse.Namespace) -> int:
    from rules.service import run

    if getattr(args, "rules", None):
        args.config_overrides = {"rules": {"file": args.rules}}
    return _process(args, "rules", run)


def cmd_serve(args: argparse.Namespace) -> int:
    from dashboard.server import serve
    from lifecycle.process import worker_id

    settings = _settings(args)
    start_process(settings, worker_id("api"))
    return serve(settings)


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from dashboard.mcp_server import serve_http, serve_stdio
    except ImportError as exc:  # the SDK is an extra
        print(f"sightline mcp needs the `mcp` extra: pip install 'sightline[mcp]' ({exc})", file=sys.stderr)
        return 2
    from lifecycle.process import setup_logging, worker_id

    overrides: dict[str, Any] = {k: v for k, v in (("api_url", args.api), ("port", args.mcp_port)) if v}
    settings = _settings(args)
    if overrides:
        settings = settings.model_copy(update={"mcp": settings.mcp.model_copy(update=overrides)})
    setup_logging(settings.log_level, worker_id("mcp"))  # stderr: stdout is the stdio transport
    return serve_http(settings) if args.transport == "http" else serve_stdio(settings)


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

    if args.dir is None and args.asyncapi is None:
        print("schema export: give DIR (JSON Schemas), --asyncapi FILE, or both", file=sys.stderr)
        return 2
    for path in export_schemas(args.dir) if args.dir is not None else []:
        print(path)
    if args.asyncapi is not None:
        import json
        from importlib.metadata import PackageNotFoundError, version

        from bus.asyncapi import document

        try:
            v = version("sightline")
        except PackageNotFoundError:  # running from a checkout without an install
            v = "0"
        args.asyncapi.write_text(json.dumps(document(_settings(args).bus, v), indent=2) + "\n")
        print(args.asyncapi)
    return 0


def cmd_engine_check(args: argparse.Namespace) -> int:
    from glm45v_engine.check import main

    return main(_settings(args).engine, image=args.image, query=args.query)


def cmd_search(args: argparse.Namespace) -> int:
    """`search query TEXT` prints hits best first; `search reindex` rebuilds every vector."""
    import json
    from datetime import UTC, datetime

    from sinks.db import epoch
    from sinks.search import open_search
    from sinks.search_rank import SearchFilter
    from sinks.store import Store

    settings = _settings(args)
    if not settings.search.enabled:
        print("search is off (search.enabled: false)", file=sys.stderr)
        return 2
    store = Store(settings.store_url)
    try:
        index = open_search(store.engine, settings.search)
        if index is None:
            print("search: the embedder did not start (see the log)", file=sys.stderr)
            return 1
        if args.what == "reindex":
            from tqdm import tqdm

            total = store.counts()["tracks"] + store.counts()["summaries"]
            with tqdm(total=total, unit="doc", desc="reindex", file=sys.stderr) as bar:
                n = index.reindex(progress=bar.update)
            print(f"reindexed {n} rows with {index.signature.describe()}")
            return 0
        stamp = {
            k: getattr(args, k) and epoch(datetime.fromisoformat(getattr(args, k)))
            for k in ("since", "until")
        }
        flt = SearchFilter(camera_id=args.camera, kind=args.kind, since=stamp["since"], until=stamp["until"])
        hits = index.search(args.text, flt, args.limit)
        for h in hits:
            if args.json:
                print(json.dumps(h.__dict__))
                continue
            when = datetime.fromtimestamp(h.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{h.score:.4f}  {h.matched:<7}  {when}  {h.camera_name:<16}  {h.kind:<7}  {h.id}  {h.text}"
            )
        if not hits:
            print("no hits", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_replay(args: argparse.Namespace) -> int:
    return replay_cli.run(args, _settings(args))


BenchRun = Callable[[argparse.Namespace, Settings], int]


def _benches() -> list[tuple[str, str, Callable[[argparse.ArgumentParser], None], BenchRun]]:
    from sightline.bench import cost, gating, ingest, ingest_soak, pipeline, rules, search, soak
    from sightline.eval import search_quality

    return [
        ("ingest", "decode vs sampled vs keyframes-only on a 1080p clip", ingest.add_args, ingest.run),
        ("ingest-soak", "N cameras in one ingest process: fps per camera, RSS", ingest_soak.add_args,
         ingest_soak.run),
        ("pipeline", "latency through the broker and the real services", pipeline.add_args, pipeline.run),
        ("gating", "engine calls saved by gating, tracks kept", gating.add_args, gating.run),
        ("cost", "calls, tokens and money per camera-hour: naive vs defaults vs regions", cost.add_args,
         cost.run),
        ("soak", "the full stack for minutes: RSS, fds, p99", soak.add_args, soak.run),
        ("rules", "object events evaluated per second: 100 cameras x 10 rules", rules.add_args, rules.run),
        ("search", "search over 1M tracks: index rate, p50/p99, memory, vs brute force", search.add_args,
         search.run),
        ("search-quality", "recall@10 and MRR of words, meaning and hybrid search on a labelled set",
         search_quality.add_args, search_quality.run),
    ]  # fmt: skip


def _add_bench(sub: Any, load: bool) -> None:
    bp = sub.add_parser(
        "bench", help="benchmarks, printed as ratios against a baseline measured in the same run"
    )
    if not load:  # the benches (PyAV, SciPy, the stack) are imported only when `bench` is the verb
        return
    bsub = bp.add_subparsers(dest="what", required=True, metavar="BENCH")
    for name, help_, add_args, run in _benches():
        sp = bsub.add_parser(name, help=help_, description=help_)
        _common_args(sp)
        add_args(sp)
        sp.set_defaults(fn=lambda args, run=run: run(args, _settings(args)))


def _common_args(sp: argparse.ArgumentParser, bootstrap: bool = True) -> None:
    sp.add_argument("--config", "-c", help="YAML config file or preset name (default, demo, production)")
    if bootstrap:
        sp.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides bus.bootstrap)")


def build_parser(verb_hint: str | None = "bench") -> argparse.ArgumentParser:
    """The whole parser; `verb_hint` (the verb about to run) says whether the benches must be loaded."""
    p = argparse.ArgumentParser(prog="sightline", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, fn: Verb, help_: str, bootstrap: bool = True) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
        _common_args(sp, bootstrap)
        sp.set_defaults(fn=fn)
        return sp

    up = verb(
        "up", cmd_up, "run everything in one process tree: embedded broker, ingest, analyzer, sink, API"
    )
    up.add_argument("--host", help="API/dashboard address (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="API/dashboard port (default 8000)")
    up.add_argument("--data-dir", help="where the store and snapshots live (default ./data)")
    up.add_argument("--no-sample", action="store_true", help="do not register the bundled sample camera")
    verb("ingest", cmd_ingest, "decode cameras and files into the frames topic")
    verb("analyze", cmd_analyze, "ask the engine about frames; emit events")
    verb("sink", cmd_sink, "write events, summaries and status into the store")
    rules = verb("rules", cmd_rules, "evaluate zones, lines and rules over tracked objects; emit alerts")
    rules.add_argument("--rules", help="a rules file (zones, lines, rules); overrides rules.file")
    serve = verb("serve", cmd_serve, "serve the REST API and the dashboard")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    mp = verb("mcp", cmd_mcp, "serve the Model Context Protocol for agents (stdio or streamable HTTP)", False)
    mp.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    mp.add_argument("--api", help="the REST API's base URL (default: from api.host/api.port)")
    mp.add_argument("--port", dest="mcp_port", type=int, help="streamable HTTP port (default mcp.port)")

    rp = verb("replay", cmd_replay, "replay a video file through ingest, analyzer and sink; score it")
    replay_cli.add_args(rp)
    _add_bench(sub, load=verb_hint == "bench")

    cp = sub.add_parser("config", help="configuration tools")
    csub = cp.add_subparsers(dest="what", required=True)
    cv = csub.add_parser("validate", help="check a config file and print every error with its path")
    cv.add_argument("file")
    cv.set_defaults(fn=cmd_config_validate)

    sp = sub.add_parser("schema", help="message contracts")
    ssub = sp.add_subparsers(dest="what", required=True)
    se = ssub.add_parser(
        "export", help="write the JSON Schema of every message kind to DIR, and/or the AsyncAPI document"
    )
    se.add_argument("dir", type=Path, nargs="?")
    se.add_argument(
        "--asyncapi", type=Path, metavar="FILE", help="write an AsyncAPI 3 document of every topic"
    )
    se.add_argument("--config", "-c", help="config whose topic prefix, partitions and bootstrap to describe")
    se.set_defaults(fn=cmd_schema_export)

    srch = sub.add_parser("search", help="search history by words and meaning; rebuild the index")
    srsub = srch.add_subparsers(dest="what", required=True)
    sq = srsub.add_parser("query", help="print the best hits for TEXT (tracks and summaries)")
    _common_args(sq, bootstrap=False)
    sq.add_argument("text")
    sq.add_argument("--camera", help="only this camera id")
    sq.add_argument("--kind", choices=["track", "summary"])
    sq.add_argument("--since", help="ISO time; hits overlapping [since, until)")
    sq.add_argument("--until", help="ISO time")
    sq.add_argument("--limit", type=int, default=20)
    sq.add_argument("--json", action="store_true", help="one JSON object per hit")
    sq.set_defaults(fn=cmd_search)
    sr = srsub.add_parser("reindex", help="embed every track and summary again with the configured embedder")
    _common_args(sr, bootstrap=False)
    sr.set_defaults(fn=cmd_search)

    ep = sub.add_parser("engine", help="engine tools")
    esub = ep.add_subparsers(dest="what", required=True)
    ec = esub.add_parser("check", help="send a probe image to the configured engine and print what came back")
    ec.add_argument("--config", "-c")
    ec.add_argument("--image", help="probe image (default: a generated one)")
    ec.add_argument("--query", default="people", help="grounding query to send")
    ec.set_defaults(fn=cmd_engine_check)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
