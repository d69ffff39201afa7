"""deploy/k8s: the Kustomize base and its gpu / zai overlays render, every object validates against
the Kubernetes schemas offline (kubernetes-validate), and what they run is what compose runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need  # type: ignore[import-not-found]

from configs import load_settings
from sightline.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("gpu", "zai")
K8S_VERSION = "1.32"  # the oldest minor the manifests promise (kubectl here is 1.32)
PROCESS_VERBS = {"ingest", "analyze", "rules", "sink", "serve"}


def render(overlay: str) -> list[dict[str, Any]]:
    need(shutil.which("kubectl") is not None, "kubectl (with Kustomize) is not installed")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / "deploy/k8s/overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def _deployments(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    objs = render(overlay)
    kinds = sorted({o["kind"] for o in objs})
    assert {"Deployment", "PodDisruptionBudget", "Service", "ConfigMap", "Job"} <= set(kinds), kinds
    for o in objs:
        kv.validate(o, K8S_VERSION, strict=True)  # raises on an unknown field or a wrong type
    # The validator is not a rubber stamp: a misspelt field is refused.
    bad = yaml.safe_load(yaml.safe_dump(_deployments(objs)["sightline-ingest"]))
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_deployment_per_process_kind_same_image_probes_budgets_and_requests(overlay: str) -> None:
    objs = render(overlay)
    deps = _deployments(objs)
    parser = build_parser()
    verbs = set()
    images = set()
    budgets = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    for name, d in deps.items():
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        args = parser.parse_args(c["args"])  # a real verb and flags, or the test fails
        verbs.add(args.verb)
        assert (ROOT / args.config).is_file()
        images.add(c["image"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], name
        for probe in ("livenessProbe", "readinessProbe"):
            assert probe in c, f"{name} has no {probe}"
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(
            all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items()) for b in budgets
        ), f"no PodDisruptionBudget covers {name}"
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert verbs == PROCESS_VERBS
    assert len(images) == 1, images
    serve = next(
        d for d in deps.values() if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "serve"
    )
    probes = serve["spec"]["template"]["spec"]["containers"][0]
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secrets_come_from_the_cluster_and_resolve_to_valid_settings(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render(overlay)
    assert not [o for o in objs if o["kind"] == "Secret"], "secrets are created in the cluster, never shipped"
    maps = {o["metadata"]["name"]: o["data"] for o in objs if o["kind"] == "ConfigMap"}
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    assert {"kafka", "postgres"} <= names  # configs/production.yaml's hosts, as external services
    for name, d in _deployments(objs).items():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        env = {}
        secrets = set()
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                env.update(maps[src["configMapRef"]["name"]])
            else:
                secrets.add(src["secretRef"]["name"])
        for var in [v for v in os.environ if v.startswith("SIGHTLINE_")]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        settings = load_settings(ROOT / "configs/production.yaml")
        for var, value in env.items():  # every variable names a real field, and took effect
            field: Any = settings
            for part in var.removeprefix("SIGHTLINE_").lower().split("__"):
                field = getattr(field, part)
            assert field == type(field)(value), (var, field)
        if c["args"][0] in ("sink", "serve"):
            assert "sightline-secrets" in secrets, name
        if c["args"][0] == "ingest":
            assert settings.ingest.session_timeout_s > 0 and settings.ingest.slots >= 2
            (wid,) = [e for e in c["env"] if e["name"] == "SIGHTLINE_INGEST__WORKER_ID"]
            assert wid["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # unique per pod
            assert not secrets, "ingest needs no secret"
        if c["args"][0] == "analyze":
            if overlay == "zai":
                assert "sightline-zai" in secrets and settings.engine.model == "glm-4.5v"
            else:
                assert "sightline-zai" not in secrets and "vllm" in names
