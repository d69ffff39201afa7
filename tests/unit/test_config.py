from __future__ import annotations

from pathlib import Path

import pytest

from configs import ConfigError, OpenAIEngineConfig, load_settings
from configs.settings import PRESETS_DIR


@pytest.mark.parametrize("preset", sorted(p.name for p in PRESETS_DIR.glob("*.yaml")))
def test_every_preset_validates(preset: str) -> None:
    load_settings(PRESETS_DIR / preset)


def test_env_overrides_yaml_with_nested_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGHTLINE_ENGINE__TYPE", "openai")
    monkeypatch.setenv("SIGHTLINE_ENGINE__BASE_URL", "http://10.1.2.3:8000/v1")
    monkeypatch.setenv("SIGHTLINE_INGEST__SAMPLE_FPS", "0.5")
    s = load_settings(PRESETS_DIR / "demo.yaml")
    assert isinstance(s.engine, OpenAIEngineConfig)
    assert s.engine.base_url == "http://10.1.2.3:8000/v1"
    assert s.ingest.sample_fps == 0.5


def test_unknown_keys_and_bad_values_are_all_reported(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("ingest:\n  sample_fps: -1\n  colour: red\nengine:\n  type: nosuch\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(f)
    text = "\n".join(info.value.errors)
    assert "ingest.sample_fps" in text
    assert "ingest.colour" in text
    assert "engine" in text
    assert "bogus" in text


def test_missing_file_and_bad_yaml_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_settings_are_frozen() -> None:
    s = load_settings(None)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        s.ingest.sample_fps = 3  # type: ignore[misc]
