"""The compose `monitoring` profile: Prometheus finds every process, Grafana shows the shipped dashboard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import need
from deploy_support import DEPLOY, load_compose, service_env, sightline_services

from configs import Settings, load_settings

GRAFANA = DEPLOY / "grafana"
PROFILES = ("gpu", "zai")


def _operator_dir(tmp_path: Path) -> Path:
    shutil.copy(DEPLOY.parent / "docker-compose.yml", tmp_path)
    (tmp_path / "deploy").mkdir()
    for example in DEPLOY.glob("*.env.example"):
        name = example.name.removesuffix(".example")
        if name != "compose.env":
            shutil.copy(example, tmp_path / "deploy" / name)
    (tmp_path / "deploy" / "prometheus_api_key").write_text("CHANGE_ME_viewer_key_000\n")
    return tmp_path


def test_the_monitoring_profile_validates_with_docker_compose(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    need(compose is not None, "docker-compose is not installed (apt-get install docker-compose)")
    assert compose is not None
    where = _operator_dir(tmp_path)
    for profile in PROFILES:
        done = subprocess.run(
            [compose, "--profile", profile, "--profile", "monitoring", "config", "-q"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    (where / "deploy" / "grafana.env").unlink()  # the same check refuses a missing secrets file
    done = subprocess.run(
        [compose, "--profile", "zai", "--profile", "monitoring", "config", "-q"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "grafana.env" in done.stderr + done.stdout


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool is not installed (Debian package `prometheus`)")
    assert promtool is not None
    key = tmp_path / "api_key"
    key.write_text("CHANGE_ME_viewer_key_000\n")
    config = (DEPLOY / "prometheus.yml").read_text().replace("/run/secrets/prometheus_api_key", str(key))
    (tmp_path / "prometheus.yml").write_text(config)
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _settings(path: Path, env: dict[str, str]) -> Settings:
    """What the container's process loads: its config file and its own SIGHTLINE_* variables only."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("SIGHTLINE_")]:
            mp.delenv(name)
        for name, value in env.items():
            mp.setenv(name, value)
        return load_settings(path)


def test_prometheus_scrapes_each_sightline_service_on_the_port_its_config_opens() -> None:
    compose = load_compose()
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    targets = {name: sd["port"] for job in scrape for sd in job["dns_sd_configs"] for name in sd["names"]}
    kind_of = {"ingest": "ingest", "analyze": "analyzer", "sink": "sink", "rules": "rules"}
    seen = set()
    for name, svc in sightline_services(compose).items():
        if "entrypoint" in svc:
            continue  # the one-shot topics job
        verb, config = svc["command"][0], svc["command"][svc["command"].index("--config") + 1]
        settings = _settings(DEPLOY.parent / config, service_env(svc))
        assert name in targets, f"Prometheus does not scrape {name}"
        if verb == "serve":
            assert targets[name] == settings.api.port
        else:
            m = settings.metrics
            assert m.enabled and m.host == "0.0.0.0", f"{name} serves no metrics in compose"
            assert targets[name] == getattr(m, f"{kind_of[verb]}_port"), name
        seen.add(name)
    assert {"ingest", "analyzer", "analyzer-zai", "rules", "sinks", "dashboard"} <= seen
    assert compose["services"]["prometheus"]["profiles"] == ["monitoring"]
    assert compose["services"]["grafana"]["profiles"] == ["monitoring"]


def test_grafana_provisions_the_datasource_and_the_dashboard_the_panels_name() -> None:
    compose = load_compose()
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sightline.yml").read_text())
    [prov] = provider["providers"]
    assert mounts[prov["options"]["path"]] == "./deploy/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    dashboard = json.loads((GRAFANA / "dashboards" / "sightline.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", ["prometheus_api_key", "grafana.env"])
def test_monitoring_secrets_stay_out_of_git(name: str) -> None:
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", f"deploy/{name}"],
        cwd=DEPLOY.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.strip() == f"deploy/{name}"
