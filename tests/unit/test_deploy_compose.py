"""docker-compose.yml and configs/production.yaml describe a stack the code can actually run.

Checked two ways: `docker compose config` (when a compose binary exists) for the file format, and
in Python for what compose cannot know: every command is a real `sightline` verb, every SIGHTLINE_*
variable is a real config field, and each container's config resolves to the services it must reach.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import need  # type: ignore[import-not-found]
from deploy_support import (
    COMPOSE,
    ROOT,
    env_list,
    example_for,
    load_compose,
    load_script,
    parse_env_file,
    parse_env_text,
    service_env,
    sightline_services,
)
from pydantic import BaseModel

from configs import Settings, load_settings
from sightline.cli import build_parser, main

PROCESS_VERBS = {"ingest", "analyze", "rules", "sink", "serve"}
PROFILES = ("gpu", "zai")
NON_SIGHTLINE_ENV = {"PGPASSWORD": "libpq reads it for store.url, so the password is never in the URL"}


# -- compose's own validation -------------------------------------------------------------------


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def _operator_dir(tmp_path: Path, compose_text: str | None = None, skip: str = "") -> Path:
    """What an operator has after following docs/deploy.md: the compose file and real env files."""
    (tmp_path / "deploy").mkdir(parents=True)
    (tmp_path / "docker-compose.yml").write_text(compose_text or COMPOSE.read_text())
    for example in (ROOT / "deploy").glob("*.env.example"):
        name = example.name.removesuffix(".example")
        if name not in ("compose.env", skip):
            shutil.copy(example, tmp_path / "deploy" / name)
    return tmp_path


def _config_q(cmd: list[str], where: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, "-f", str(where / "docker-compose.yml"), *extra, "config", "-q"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_accepts_the_file_for_each_profile(tmp_path: Path) -> None:
    cmd = _compose_cmd()
    need(cmd is not None, "no docker-compose (apt-get install docker-compose) or `docker compose` plugin")
    assert cmd is not None
    where = _operator_dir(tmp_path / "ok")
    for profile in PROFILES:
        done = _config_q(cmd, where, "--profile", profile)
        assert done.returncode == 0, done.stderr

    # The same check rejects a broken file and a missing secrets file, so the pass above means something.
    raw = yaml.safe_load(COMPOSE.read_text())
    raw["services"]["dashboard"]["ports"] = "8000:8000"  # must be a list
    broken = _config_q(cmd, _operator_dir(tmp_path / "broken", yaml.safe_dump(raw)))
    assert broken.returncode != 0 and "ports" in broken.stderr + broken.stdout
    no_secrets = _config_q(cmd, _operator_dir(tmp_path / "nosecrets", skip="sightline.env"))
    assert no_secrets.returncode != 0
    assert "sightline.env" in no_secrets.stderr + no_secrets.stdout


# -- commands -------------------------------------------------------------------------------------


def _active(compose: dict[str, Any], profile: str) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if not s.get("profiles") or profile in s["profiles"]}


def test_every_sightline_service_runs_a_real_cli_verb() -> None:
    compose = load_compose()
    services = sightline_services(compose)
    assert services, "no service uses the sightline image"
    parser = build_parser()
    for name, svc in services.items():
        if "entrypoint" in svc:
            continue  # a deploy/ script, checked below
        args = parser.parse_args(svc["command"])  # exits (fails the test) on an unknown verb or flag
        assert args.verb in PROCESS_VERBS, f"{name}: {args.verb} is not a long-running process verb"
        assert args.config and (ROOT / args.config).is_file(), f"{name}: config {args.config} not in the repo"

    for profile in PROFILES:
        active = _active(compose, profile)
        verbs = {s["command"][0] for n, s in active.items() if n in services and "entrypoint" not in s}
        assert verbs == PROCESS_VERBS, f"profile {profile} runs {sorted(verbs)}"


def test_the_topics_job_runs_the_shipped_script_with_valid_arguments() -> None:
    topics = load_compose()["services"]["topics"]
    entry = topics["entrypoint"]
    assert entry[0] == "python" and entry[1].startswith("/app/deploy/")
    script = load_script(Path(entry[1]).stem)
    with pytest.raises(SystemExit) as done:  # parse only: --help after valid arguments exits 0
        script.main([*topics["command"], "--help"])
    assert done.value.code == 0
    assert topics["restart"] == "no" and topics["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_analyzers_scale_and_long_running_services_restart_and_report_health() -> None:
    compose = load_compose()
    for name, svc in compose["services"].items():
        if name == "topics":
            continue
        assert svc.get("restart") in ("unless-stopped", "always"), name
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("analyzer", "analyzer-zai"):
        svc = compose["services"][name]
        assert "container_name" not in svc and "ports" not in svc, f"{name} cannot be scaled with --scale"


# -- environment variables -> config fields -------------------------------------------------------


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Annotated, Optional and unions)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def config_path(var: str, engine_type: str) -> str:
    """SIGHTLINE_A__B__C -> "a.b.c" when that is a Settings field; LookupError otherwise.

    The engine section is a union keyed by `type`: a variable must exist on the member the
    container actually runs (e.g. FLAVOR exists for openai, not for baseline).
    """
    assert var.startswith("SIGHTLINE_"), var
    parts = var.removeprefix("SIGHTLINE_").lower().split("__")
    models: list[type[BaseModel]] = [Settings]
    for depth, part in enumerate(parts):
        if not models:
            raise LookupError(f"{var}: {'.'.join(parts[:depth])} has no sub-fields")
        if len(models) > 1 and all("type" in m.model_fields for m in models):
            models = [m for m in models if m.model_fields["type"].default == engine_type]
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if not fields:
            raise LookupError(f"{var}: no field {part!r} under {'.'.join(parts[:depth]) or 'the root'}")
        models = [sub for f in fields for sub in _models(f.annotation)]
    return ".".join(parts)


def _engine_type(env: dict[str, str]) -> str:
    return (
        env.get("SIGHTLINE_ENGINE__TYPE") or load_settings_clean(ROOT / "configs/production.yaml").engine.type
    )


def load_settings_clean(path: Path, env: dict[str, str] | None = None) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("SIGHTLINE_")]:
            mp.delenv(name)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        return load_settings(path)


@pytest.mark.parametrize(
    ("var", "engine_type", "expected"),
    [
        ("SIGHTLINE_BUS__PARTITIONS", "openai", "bus.partitions"),
        ("SIGHTLINE_ENGINE__FLAVOR", "openai", "engine.flavor"),
        ("SIGHTLINE_ENGINE__PRICES__INPUT_PER_M", "openai", "engine.prices.input_per_m"),
        ("SIGHTLINE_ENGINE__FLAVOR", "baseline", None),  # on another union member only
        ("SIGHTLINE_ENGINE__FLAVOUR", "openai", None),
        ("SIGHTLINE_BUS__BOOTSTRAPS", "openai", None),
        ("SIGHTLINE_BUS__PARTITIONS__X", "openai", None),
        ("SIGHTLINE_STORAGE__URL", "openai", None),
    ],
)
def test_config_path_accepts_fields_and_rejects_near_misses(
    var: str, engine_type: str, expected: str
) -> None:
    if expected is None:
        with pytest.raises(LookupError):
            config_path(var, engine_type)
    else:
        assert config_path(var, engine_type) == expected


def test_every_variable_a_service_or_env_example_sets_is_a_config_field() -> None:
    compose = load_compose()
    checked = 0
    for name, svc in sightline_services(compose).items():
        env = service_env(svc)
        engine_type = _engine_type(env)
        for var in env:
            if var.startswith("SIGHTLINE_"):
                config_path(var, engine_type)
                checked += 1
            else:
                assert var in NON_SIGHTLINE_ENV, f"{name} sets {var}, which no Sightline code reads"
    # The templates' commented-out suggestions must be real fields too.
    for example in (ROOT / "deploy").glob("*.env.example"):
        for var in parse_env_file(example, include_commented=True):
            if var.startswith("SIGHTLINE_"):
                config_path(var, "openai")
                checked += 1
    assert checked >= 10


# -- each container's effective configuration -----------------------------------------------------


def _settings_for(svc: dict[str, Any]) -> Settings:
    args = build_parser().parse_args(svc["command"]) if "entrypoint" not in svc else None
    config = args.config if args else svc["command"][svc["command"].index("--config") + 1]
    return load_settings_clean(ROOT / config, service_env(svc))


def _host_port(url_or_hostport: str) -> tuple[str, int]:
    parts = urlsplit(url_or_hostport if "//" in url_or_hostport else f"//{url_or_hostport}")
    assert parts.hostname and parts.port, url_or_hostport
    return parts.hostname, parts.port


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_production_config_validates_with_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings_clean(ROOT / "configs/production.yaml")
    assert settings.bus.bootstrap and settings.engine.type == "openai"
    assert main(["config", "validate", str(ROOT / "configs/production.yaml")]) == 0
    assert ": ok (engine: openai, bus: kafka:9092" in capsys.readouterr().out


def test_every_container_config_points_at_the_services_of_the_stack() -> None:
    compose = load_compose()
    services = compose["services"]
    kafka_env = env_list(services["kafka"]["environment"])
    pg_env = parse_env_file(example_for(services["postgres"]["env_file"][0]))
    vllm_cmd = services["vllm"]["command"]
    seen_bus = set()
    data_volumes: set[str] = set()
    for name, svc in sightline_services(compose).items():
        s = _settings_for(svc)
        assert s.bus.bootstrap
        host, port = _host_port(s.bus.bootstrap)
        assert host in services and f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"], (
            name
        )
        seen_bus.add((s.bus.topic_prefix, s.bus.partitions, s.bus.replication))
        store = urlsplit(s.store_url)
        assert store.hostname in services and store.port == 5432, name
        assert store.username == pg_env["POSTGRES_USER"] and store.path == f"/{pg_env['POSTGRES_DB']}", name
        assert store.password is None, f"{name}: the password belongs in PGPASSWORD, not the URL"
        env = service_env(svc)
        if svc["command"][0] in ("sink", "serve"):
            assert env.get("PGPASSWORD") == pg_env["POSTGRES_PASSWORD"], f"{name} cannot log in to the store"
        else:
            assert "PGPASSWORD" not in env and "SIGHTLINE_API__API_KEYS" not in env, (
                f"{name} gets secrets it never uses"
            )
        if svc["command"][0] in ("analyze", "sink", "serve"):  # snapshots: written, expired, served
            data_volumes.add(next(v.split(":")[0] for v in svc["volumes"] if v.endswith(f":{s.data_dir}")))
    assert len(seen_bus) == 1, f"services disagree on topics/partitions: {seen_bus}"
    assert len(data_volumes) == 1 and data_volumes <= set(compose["volumes"]), data_volumes

    gpu = _settings_for(services["analyzer"]).engine
    assert gpu.type == "openai" and gpu.flavor == "vllm"
    assert _host_port(gpu.base_url) == ("vllm", int(_flag(vllm_cmd, "--port")))
    assert gpu.model == _flag(vllm_cmd, "--served-model-name")

    zai = _settings_for(services["analyzer-zai"]).engine
    assert zai.type == "openai" and zai.flavor == "zai" and zai.model == "glm-4.5v"
    assert zai.base_url == "https://api.z.ai/api/paas/v4"
    assert zai.api_key, "the zai analyzer gets no key from deploy/zai.env"

    # In each profile the dashboard (ask, readiness) talks to the same engine as the analyzers.
    assert _settings_for(services["dashboard"]).engine == gpu
    assert _settings_for(services["dashboard-zai"]).engine == zai
    for name in ("dashboard", "dashboard-zai"):
        s = _settings_for(services[name])
        assert s.api.host == "0.0.0.0", f"{name} must listen beyond the container's loopback"
        assert any(str(p).endswith(f":{s.api.port}") for p in services[name]["ports"]), name


def test_vllm_serves_glm45v_fp8_with_the_glm_parsers_on_reserved_gpus() -> None:
    vllm = load_compose({"TP_SIZE": "8"})["services"]["vllm"]
    cmd = vllm["command"]
    assert vllm["entrypoint"] == ["vllm", "serve"] and cmd[0] == "zai-org/GLM-4.5V-FP8"
    assert _flag(cmd, "--tensor-parallel-size") == "8"
    assert _flag(cmd, "--reasoning-parser") == "glm45" and _flag(cmd, "--tool-call-parser") == "glm45"
    assert "--enable-auto-tool-choice" in cmd
    media = _flag(cmd, "--allowed-local-media-path")
    assert any(v.split(":")[1] == media for v in vllm["volumes"]), "the allowed media path is not mounted"
    assert any(v.split(":")[1] == vllm["environment"]["HF_HOME"] for v in vllm["volumes"]), "no model cache"
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and str(device["count"]) == "8"
    assert vllm["profiles"] == ["gpu"]


def test_kafka_runs_kraft_and_topics_get_the_configured_partitions() -> None:
    compose = load_compose({"SL_PARTITIONS": "24"})
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_list(kafka["environment"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert (
        "kafka-data:/var/lib/kafka/data" in kafka["volumes"]
        and env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    )
    assert _settings_for(compose["services"]["topics"]).bus.partitions == 24
    assert _settings_for(compose["services"]["analyzer"]).bus.partitions == 24


def test_no_secret_is_written_into_the_compose_file() -> None:
    secretish = ("PASSWORD", "API_KEY", "TOKEN", "SECRET")
    for name, svc in load_compose()["services"].items():
        for var in env_list(svc.get("environment")):
            assert not any(s in var for s in secretish), f"{name} sets {var} inline; use an env file"


# -- env-file templates ---------------------------------------------------------------------------

SECRET_NAME = re.compile(r"PASSWORD|API_KEY|TOKEN|SECRET")
PLACEHOLDER = "CHANGE_ME"
# Shapes of real credentials: Hugging Face, OpenAI-style, Z.AI (hex id + "." + secret), long random runs.
CREDENTIAL_SHAPES = [
    re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\b[0-9a-f]{32}\.[A-Za-z0-9]{16}\b"),
    re.compile(r"(?<![A-Za-z0-9_])(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}"),
]


def secret_problems(text: str) -> list[str]:
    """Why a template would leak a credential: a secret variable with a value that is not a
    CHANGE_ME placeholder, or anything shaped like a real key anywhere (comments included)."""
    problems = []
    for line in text.splitlines():
        for shape in CREDENTIAL_SHAPES:
            problems += [f"credential-shaped text: {m.group(0)[:8]}…" for m in shape.finditer(line)]
    for name, value in parse_env_text(text, include_commented=True).items():
        if not value:
            continue
        if SECRET_NAME.search(name) and PLACEHOLDER not in value:
            problems.append(f"{name} has a value that is not a {PLACEHOLDER} placeholder")
        if name.endswith("API_KEYS"):
            keys = [k["key"] for k in json.loads(value)]
            problems += [f"{name}: key {k[:4]}… is not a placeholder" for k in keys if PLACEHOLDER not in k]
    return problems


@pytest.mark.parametrize(
    "leak",
    [
        "HF_TOKEN=hf_" + "aB3" * 12,
        "POSTGRES_PASSWORD=hunter2hunter2",
        "# SIGHTLINE_ENGINE__API_KEY=0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp",
        'SIGHTLINE_API__API_KEYS=[{"key": "a-real-looking-key-123", "role": "admin"}]',
        "NOTE=sk-" + "x1" * 15,
    ],
)
def test_the_secret_scanner_catches_real_looking_credentials(leak: str) -> None:
    assert secret_problems(f"# a template\n{leak}\n")


def test_env_examples_hold_placeholders_only_and_real_env_files_stay_out_of_git_and_the_image() -> None:
    examples = sorted((ROOT / "deploy").glob("*.env.example"))
    used = {f for svc in load_compose()["services"].values() for f in svc.get("env_file", [])}
    assert {str(e.relative_to(ROOT)).removesuffix(".example") for e in examples} >= used
    for example in examples:
        assert secret_problems(example.read_text()) == [], example.name
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *sorted(used)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sorted(ignored.stdout.split()) == sorted(used), "a real env file could be committed"
