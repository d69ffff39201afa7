"""The Dockerfile builds one non-root image from requirements.lock whose entry point is `sightline`.

No Docker daemon is needed: the instructions are read as text and checked against the project
(console script, CLI parser, package list, lock file, .dockerignore).
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from deploy_support import (
    ROOT,
    dockerfile_instructions,
    exec_form,
    load_compose,
    load_script,
    sightline_services,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sightline.cli import build_parser

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMAGE_EXTRAS = ("postgres", "mqtt", "ann")
NEVER_IN_IMAGE = {"torch", "torchvision", "transformers", "pytest", "ruff", "mypy", "playwright"}


def _final_stage() -> list[tuple[str, str]]:
    steps = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _one(steps: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in steps if w == word]
    assert len(found) == 1, f"expected one {word}, found {found}"
    return found[0]


def test_entrypoint_is_the_sightline_console_script_and_cmd_is_a_cli_verb() -> None:
    final = _final_stage()
    assert exec_form(_one(final, "ENTRYPOINT")) == ["sightline"]
    assert PYPROJECT["project"]["scripts"]["sightline"] == "sightline.cli:main"
    cmd = exec_form(_one(final, "CMD"))
    args = build_parser().parse_args(cmd)
    assert args.verb == "serve" and args.config == "configs/production.yaml"
    # Relative config paths resolve against WORKDIR, where the presets are copied.
    assert _one(final, "WORKDIR") == "/app"
    assert ("COPY", "configs/*.yaml configs/") in final and (ROOT / args.config).is_file()


def test_runs_as_a_non_root_user_on_python_311_slim() -> None:
    steps = dockerfile_instructions()
    assert _one(steps, "ARG") == "PYTHON_IMAGE=python:3.11-slim"
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for w, args in steps if w == "FROM")
    user = _one(_final_stage(), "USER").split(":")[0]
    assert user not in ("root", "0")
    assert "useradd --system --uid 10001 --gid sightline" in " ".join(a for _, a in _final_stage())


def test_healthcheck_runs_a_script_the_image_contains() -> None:
    final = _final_stage()
    health = _one(final, "HEALTHCHECK")
    probe = exec_form(health[health.index("CMD") + 3 :].strip())
    assert probe[:2] == ["python", "/app/deploy/healthcheck.py"] and probe[2] == "api"
    assert ("COPY", "deploy/healthcheck.py deploy/healthcheck.py") in final
    assert (ROOT / "deploy/healthcheck.py").is_file()


def _dockerignore_excludes(path: str) -> bool:
    """Last matching pattern wins, `!` re-includes; a directory pattern covers what is under it."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or any(
            fnmatch.fnmatch(x, pattern) for x in parts
        ):
            excluded = not negate
    return excluded


def test_build_context_has_every_package_and_script_but_no_secrets_or_tests() -> None:
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for pkg in (p.removesuffix("*") for p in packages):
        assert not _dockerignore_excludes(f"{pkg}/__init__.py"), f"{pkg} is not sent to the build"
    for needed in ("pyproject.toml", "requirements.lock", "configs/production.yaml", "deploy/healthcheck.py"):
        assert not _dockerignore_excludes(needed), needed
    for script in {
        s["entrypoint"][1] for s in sightline_services(load_compose()).values() if "entrypoint" in s
    }:
        rel = script.removeprefix("/app/")
        assert not _dockerignore_excludes(rel) and ("COPY", f"{rel} {rel}") in _final_stage(), script
    for private in (
        "deploy/sightline.env",
        "deploy/zai.env",
        ".venv/bin/python",
        "tests/conftest.py",
        "data/x",
    ):
        assert _dockerignore_excludes(private), f"{private} would be sent to the Docker daemon"
    assert _dockerignore_excludes("bus/__pycache__/kafka.cpython-311.pyc")


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"unpinned line in requirements.lock: {line}"
            pins[canonicalize_name(name)] = version
    return pins


def test_requirements_lock_pins_every_runtime_dependency_and_nothing_heavy() -> None:
    pins = _lock()
    project = PYPROJECT["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    wanted += [Requirement(r) for extra in IMAGE_EXTRAS for r in project["optional-dependencies"][extra]]
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a runtime dependency but not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"
    assert "psycopg-binary" in pins, "psycopg[binary]: the slim image has no libpq"
    assert not NEVER_IN_IMAGE & set(pins), NEVER_IN_IMAGE & set(pins)
    # The image installs the lock with --no-deps, so it must be the whole closure: compare the names
    # with the closure walked through the installed metadata (regenerate with deploy/lock_requirements.py).
    lock = load_script("lock_requirements")
    closure = lock.closure(lock.root_requirements(ROOT / "pyproject.toml", IMAGE_EXTRAS))
    assert set(closure) == set(pins), f"stale lock: {sorted(set(closure) ^ set(pins))}"
    install = next(a for w, a in dockerfile_instructions() if w == "RUN" and "requirements.lock" in a)
    assert "--no-deps" in install and "--only-binary=:all:" in install and "pip check" in install
