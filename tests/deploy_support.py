"""Readers for the deployment files (compose, env files, Dockerfile), shared by the test_deploy_* tests."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"
SIGHTLINE_IMAGE = "sightline:local"

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose-style `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$` substitution, recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        got = env.get(name)
        unset = got is None or (op is not None and op.startswith(":") and got == "")
        if unset and op in (":-", "-"):
            return arg
        if unset and op in (":?", "?"):
            raise ValueError(f"${{{name}}} is required: {arg}")
        return got or ""

    return _VAR.sub(sub, value)


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the `<<: *anchor` merge keys
    data: dict[str, Any] = interpolate(raw, env or {})
    return data


def sightline_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == SIGHTLINE_IMAGE}


def env_list(value: Any) -> dict[str, str]:
    """A service's `environment`, as a mapping or a list of NAME=value."""
    if value is None:
        return {}
    if isinstance(value, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def parse_env_file(path: Path, include_commented: bool = False) -> dict[str, str]:
    return parse_env_text(path.read_text(), include_commented)


def parse_env_text(text: str, include_commented: bool = False) -> dict[str, str]:
    """NAME=value lines (the docker env-file format). Commented-out assignments on request."""
    out = {}
    for line in text.splitlines():
        text = line.strip()
        if include_commented and re.match(r"#\s*[A-Z][A-Z0-9_]*=", text):
            text = text.lstrip("#").strip()
        if not text or text.startswith("#") or "=" not in text:
            continue
        name, _, value = text.partition("=")
        out[name.strip()] = value
    return out


def example_for(env_file: str) -> Path:
    """deploy/x.env (what compose reads, git-ignored) -> deploy/x.env.example (what the repo ships)."""
    return ROOT / f"{env_file}.example"


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: env files in order (from their examples), then `environment`."""
    env: dict[str, str] = {}
    files = service.get("env_file") or []
    for f in [files] if isinstance(files, str) else files:
        env.update(parse_env_file(example_for(f)))
    env.update(env_list(service.get("environment")))
    return env


def dockerfile_instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT; a shell-form string is an error for us."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def load_script(name: str) -> ModuleType:
    """Import deploy/<name>.py (the scripts are not a package: the image runs them by path)."""
    path = DEPLOY / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
