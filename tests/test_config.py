"""Job config: defaults, user files, flag overrides, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetgen.tasks.config.job import ConfigError, load_job_config


def test_default_config_loads() -> None:
    cfg = load_job_config()
    assert cfg.defaults.model == "gpt-image-2"
    assert cfg.provider == "placeholder"
    assert set(cfg.renditions) <= set(cfg.presets)


def test_user_file_merges_over_defaults(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("defaults:\n  quality: high\nlimits:\n  ipm: 50\n")
    cfg = load_job_config(path)
    assert cfg.defaults.quality == "high"
    assert cfg.defaults.size == "1024x1024"  # untouched default survives the merge
    assert cfg.limits.ipm == 50
    assert cfg.limits.max_attempts == 5


def test_flags_override_file_and_none_means_not_given(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("budget:\n  cap_usd: 10\nlimits:\n  ipm: 50\n")
    cfg = load_job_config(path, {"budget.cap_usd": 2.5, "limits.ipm": None, "store": "s3://b/x"})
    assert cfg.budget.cap_usd == 2.5
    assert cfg.limits.ipm == 50
    assert cfg.store == "s3://b/x"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("budgett_usd: 3\n", "budgett_usd"),
        ("limits:\n  ipm: -1\n", "limits.ipm"),
        ("renditions: [nope]\n", "nope"),
        ("provider: dall-e\n", "provider"),
        ("defaults: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "mapping"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="(?s)" + needle.replace("[", r"\[")):
        load_job_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_job_config(tmp_path / "nope.yaml")


def test_custom_preset_in_job_config(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "presets:\n  square-500: {width: 500, height: 500, format: jpeg}\n"
        "renditions: [square-500, thumb]\n"
    )
    cfg = load_job_config(path)
    assert cfg.presets["square-500"].width == 500
    assert "thumb" in cfg.presets
