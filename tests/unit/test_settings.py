"""Bad settings stop the process before anything starts: one line per problem, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.loader import SettingsError, load_settings
from config.settings import Settings


def run_check(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    return subprocess.run(
        [sys.executable, "-m", "serve.cli", "check-config"],
        env=clean | env, capture_output=True, text=True, timeout=60,
    )


def test_defaults_are_valid():
    result = run_check()
    assert result.returncode == 0, result.stderr


def test_non_numeric_port_exits_2_naming_the_variable():
    result = run_check(FARM_API_PORT="abc")
    assert result.returncode == 2
    assert "FARM_API_PORT" in result.stderr and "integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_default_secret_and_embedded_services_all_at_once():
    result = run_check(FARM_ENV="production")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("  FARM_")]
    assert {line.split(":")[0].strip() for line in lines} == {
        "FARM_JWT_SECRET", "FARM_MONGO_URL", "FARM_S3_ENDPOINT", "FARM_SMTP_HOST"
    }


def test_production_with_real_services_and_a_strong_secret_is_accepted():
    result = run_check(
        FARM_ENV="production", FARM_JWT_SECRET="x" * 40,
        FARM_MONGO_URL="mongodb://db.internal:27017", FARM_S3_ENDPOINT="s3.internal:9000",
        FARM_SMTP_HOST="smtp.internal",
    )
    assert result.returncode == 0, result.stderr


def test_several_problems_are_each_reported():
    with pytest.raises(SettingsError) as caught:
        load_settings(api_port="abc", api_replicas=0, env="staging")
    names = sorted(p.split(":")[0] for p in caught.value.problems)
    assert names == ["FARM_API_PORT", "FARM_API_REPLICAS", "FARM_ENV"]


def test_secrets_are_never_echoed_in_problems_or_repr():
    with pytest.raises(SettingsError) as caught:
        load_settings(jwt_secret=["not-a-string-secret-value"])
    assert "not-a-string-secret-value" not in str(caught.value.problems)
    settings = Settings(jwt_secret="hunter2-very-secret", s3_secret_key="s3-very-secret")
    assert "hunter2" not in repr(settings) and "s3-very-secret" not in repr(settings)


def test_cors_origins_accept_a_comma_separated_list(monkeypatch):
    monkeypatch.setenv("FARM_CORS_ORIGINS", "https://a.example, https://b.example/")
    assert Settings().cors_origins == ["https://a.example", "https://b.example"]


def test_every_field_is_described_and_durations_carry_units():
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        if any(word in name for word in ("ttl", "timeout", "window", "idle")):
            assert name.endswith("_s"), f"{name} should say its unit"
