from __future__ import annotations

import re
from pathlib import Path

import pytest

from argo_engine.errors import ConfigurationError
from argo_engine.settings import env_var_names, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_exactly_the_settings_fields() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = re.findall(r"^(ARGO_[A-Z0-9_]+)=", text, flags=re.MULTILINE)
    assert len(listed) == len(set(listed))
    assert set(listed) == set(env_var_names())


def test_env_example_loads_as_a_dotenv_file() -> None:
    settings = load_settings(ROOT / ".env.example")
    assert settings.session.symbols == ["BTCUSDT", "ETHUSDT"]
    assert settings.feed.kind == "synthetic"
    assert settings.broker.kind == "paper"


def test_every_field_has_a_description() -> None:
    from pydantic import BaseModel

    from argo_engine.settings import ArgoSettings

    for name, field in ArgoSettings.model_fields.items():
        assert field.description, name
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub, subfield in ann.model_fields.items():
                assert subfield.description, f"{name}.{sub}"


def test_nested_env_vars_and_csv_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_SESSION__SYMBOLS", "SOLUSDT, ADAUSDT")
    monkeypatch.setenv("ARGO_SESSION__TIMEZONE", "America/New_York")
    monkeypatch.setenv("ARGO_PERSISTENCE__FLUSH_INTERVAL_S", "0.5")
    monkeypatch.setenv("ARGO_STRATEGY__PARAMS", '{"period": 7}')
    settings = load_settings(None)
    assert settings.session.symbols == ["SOLUSDT", "ADAUSDT"]
    assert settings.session.timezone == "America/New_York"
    assert settings.persistence.flush_interval_s == 0.5
    assert settings.strategy.params == {"period": 7}


def test_secrets_are_secretstr_and_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGO_BROKER__API_SECRET", "s3cr3t-value")
    settings = load_settings(None)
    assert settings.broker.api_secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)
    assert "s3cr3t-value" not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("env", "value", "field"),
    [
        ("ARGO_SESSION__TIMEZONE", "Mars/Olympus", "session.timezone"),
        ("ARGO_SESSION__SYMBOLS", "../etc", "session.symbols"),
        ("ARGO_SESSION__INTERVAL", "7x", "session.interval"),
        ("ARGO_FEED__KIND", "carrier-pigeon", "feed.kind"),
        ("ARGO_PERSISTENCE__FLUSH_INTERVAL_S", "-1", "persistence.flush_interval_s"),
        ("ARGO_PERSISTENCE__PARQUET_INTERVAL_S", "0", "persistence.parquet_interval_s"),
        ("ARGO_SESSION__SESSION_ID", "../../escape", "session.session_id"),
    ],
)
def test_invalid_settings_raise_configuration_error_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings(None)
    assert field in str(info.value)
    assert field in info.value.attrs["fields"]


def test_unknown_setting_in_override_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r"session\.colour"):
        load_settings(None, session={"colour": "red"})


def test_trigger_options_lay_over_the_deployment_defaults() -> None:
    from argo_engine.options import RunOptions

    defaults = {
        "feed": "synthetic",
        "strategy": "rsi",
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "params": {"period": 10, "quantity": 2},
    }
    given = RunOptions.model_validate({"bars": 100, "params": {"period": 7}})

    merged = given.over(defaults)

    assert merged.bars == 100
    assert merged.feed == "synthetic"
    assert merged.symbols == ["BTCUSDT", "ETHUSDT"]
    assert merged.params == {"period": 7, "quantity": 2}
    assert RunOptions().over(defaults).model_dump(exclude_unset=True) == defaults


def test_end_not_after_start_and_unsupported_intervals_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"feed\.end") as info:
        load_settings(None, feed={"start": "2025-10-02T00:00:00Z", "end": "2025-10-01T00:00:00Z"})
    assert "must be after start" in info.value.message
    with pytest.raises(ConfigurationError, match=r"session\.interval"):
        load_settings(None, session={"interval": "7m"})
