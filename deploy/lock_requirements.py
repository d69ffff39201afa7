"""Write `requirements.lock`: the runtime dependency closure of the image, pinned from a working venv.

The image installs exactly these versions (the ones the test suite ran against), then the project
itself with `--no-deps`. Only `[project.dependencies]` and the extras the containers need are
followed; torch/transformers (the `gpu` extra: the GPU lives in the vLLM container) and dev tools
never enter the image.

    .venv/bin/python deploy/lock_requirements.py > requirements.lock
    .venv/bin/python deploy/lock_requirements.py --check requirements.lock   # exit 1 when stale
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
IMAGE_EXTRAS = ("postgres", "mqtt", "ann")
# Never in the runtime image, whatever pulls them in. (tokenizers and safetensors stay: search's
# default embedder, wordllama, loads its model with them.)
EXCLUDED = frozenset({"torch", "torchvision", "transformers", "pip", "setuptools"})
# The image is linux/amd64 CPython 3.11: evaluate markers for it, not for the machine running this script.
TARGET_ENV: dict[str, str] = {
    **{k: str(v) for k, v in default_environment().items()},
    "python_version": "3.11",
    "sys_platform": "linux",
    "platform_system": "Linux",
}


def root_requirements(pyproject: Path, extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"pyproject has no extra {extra!r}")
        reqs += [Requirement(r) for r in optional[extra]]
    return reqs


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    if not extras:
        return req.marker.evaluate({**TARGET_ENV, "extra": ""})
    return any(req.marker.evaluate({**TARGET_ENV, "extra": e}) for e in extras)


def closure(roots: list[Requirement]) -> dict[str, str]:
    """name -> installed version for every runtime requirement, followed transitively."""
    pinned: dict[str, str] = {}
    todo: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset()) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, parent_extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in EXCLUDED or not _applies(req, parent_extras):
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} is required but not installed in this venv") from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"{req.name} {dist.version} does not satisfy {req}")
        pinned[name] = dist.version
        todo += [(Requirement(r), frozenset(req.extras)) for r in dist.requires or []]
    return pinned


def render(pinned: dict[str, str]) -> str:
    lines = [
        "# Runtime dependencies of the Sightline image, pinned from the venv the tests ran in.",
        f"# Extras: {', '.join(IMAGE_EXTRAS)}. Regenerate: .venv/bin/python deploy/lock_requirements.py"
        " > requirements.lock",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pinned.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", type=Path, help="compare with this lock file instead of printing")
    args = ap.parse_args(argv)
    text = render(closure(root_requirements(ROOT / "pyproject.toml", IMAGE_EXTRAS)))
    if args.check is None:
        sys.stdout.write(text)
        return 0
    if args.check.read_text() != text:
        print(f"{args.check} is stale; regenerate it with deploy/lock_requirements.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
