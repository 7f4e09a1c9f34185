"""Run options shared by the CLI and the Prefect flows, turned into validated settings.

Options left as None fall back to ARGO_* variables, ``.env`` and defaults. Secrets are never
options (they would be stored as flow-run parameters): brokers read them from settings only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from argo_engine.settings import ArgoSettings, load_settings


class RunOptions(BaseModel):
    """Per-run choices; every field is optional and overrides the environment when set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_output: str | None = Field(default=None, description="Root of the run folders.")
    feed: str | None = Field(default=None, description="synthetic | replay | binance")
    replay_file: str | None = Field(default=None, description="Parquet file for replay.")
    broker: str | None = Field(default=None, description="paper | binance-testnet | binance-live")
    symbols: list[str] | None = Field(default=None, description="Symbols to trade.")
    interval: str | None = Field(default=None, description="Bar interval, e.g. 1m.")
    start: str | None = Field(default=None, description="First bar time (ISO 8601).")
    end: str | None = Field(default=None, description="End time (ISO 8601), exclusive.")
    bars: int | None = Field(default=None, description="Bars per symbol.")
    pace: str | None = Field(default=None, description="fast | realtime")
    strategy: str | None = Field(default=None, description="Strategy name or module:Class.")
    params: dict[str, Any] | None = Field(default=None, description="Strategy parameters.")
    timezone: str | None = Field(default=None, description="Time zone of trading dates.")
    day_start: str | None = Field(default=None, description="Local start of a trading date.")
    session_id: str | None = Field(default=None, description="Session to start or resume.")
    flush_interval_s: float | None = Field(default=None, description="Flush interval (s).")
    prefetch_days: int | None = Field(default=None, description="Days of warm-up history.")

    def over(self, defaults: RunOptions | Mapping[str, Any]) -> RunOptions:
        """These options laid over ``defaults``: the fields set here win, the rest stay.

        Strategy ``params`` merge key by key. Used for options given when a deployment is
        triggered, which Prefect would otherwise put in place of the deployment's whole
        options block.
        """
        if isinstance(defaults, RunOptions):
            base = defaults.model_dump(exclude_unset=True)
        else:
            base = RunOptions.model_validate(dict(defaults)).model_dump(exclude_unset=True)
        given = self.model_dump(exclude_unset=True)
        merged = {**base, **given}
        if base.get("params") and given.get("params"):
            merged["params"] = {**base["params"], **given["params"]}
        return RunOptions.model_validate(merged)

    def to_settings(self, env_file: str | Path | None = ".env") -> ArgoSettings:
        """Merge with the environment and validate.

        Raises:
            ConfigurationError: If the result is invalid; the message names the field.
        """
        base = load_settings(env_file)
        groups: dict[str, dict[str, Any]] = {
            name: getattr(base, name).model_dump()
            for name in ("session", "feed", "broker", "strategy", "persistence")
        }
        for key in ("api_key", "api_secret"):
            groups["broker"][key] = getattr(base.broker, key).get_secret_value()
        for option, (group, key) in _FIELD_OF_OPTION.items():
            value = getattr(self, option)
            if value is not None:
                groups[group][key] = value
        if self.params:
            groups["strategy"]["params"] = {**groups["strategy"]["params"], **self.params}
        return load_settings(None, _options=OPTION_OF_FIELD, log_level=base.log_level, **groups)


# Settings field of each option (the rest: params merge into strategy.params).
_FIELD_OF_OPTION: dict[str, tuple[str, str]] = {
    "data_output": ("session", "data_output"),
    "symbols": ("session", "symbols"),
    "interval": ("session", "interval"),
    "timezone": ("session", "timezone"),
    "day_start": ("session", "day_start"),
    "session_id": ("session", "session_id"),
    "feed": ("feed", "kind"),
    "replay_file": ("feed", "replay_file"),
    "start": ("feed", "start"),
    "end": ("feed", "end"),
    "bars": ("feed", "bars"),
    "pace": ("feed", "pace"),
    "broker": ("broker", "kind"),
    "strategy": ("strategy", "name"),
    "flush_interval_s": ("persistence", "flush_interval_s"),
    "prefetch_days": ("feed", "prefetch_days"),
}

#: The ``argo run`` option that sets a settings field (named in error messages).
OPTION_OF_FIELD: dict[str, str] = {
    f"{group}.{key}": "--" + option.replace("_", "-")
    for option, (group, key) in _FIELD_OF_OPTION.items()
    if option != "flush_interval_s"
} | {"strategy.params": "--param"}


def parse_params(values: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are JSON when they parse, else plain strings.

    Raises:
        ValueError: If an item has no ``=``.
    """
    params: dict[str, Any] = {}
    for item in values:
        if "=" not in item:
            raise ValueError(f"--param expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            params[key.strip()] = json.loads(raw)
        except ValueError:
            params[key.strip()] = raw
    return params


def env_var_of(option: str) -> str:
    """The environment variable an ``argo run`` option overrides (``end`` -> ARGO_FEED__END)."""
    group, key = _FIELD_OF_OPTION[option]
    return f"ARGO_{group.upper()}__{key.upper()}"


def default_of(option: str) -> str:
    """The built-in default of an ``argo run`` option's setting, as text ("" when none)."""
    group, key = _FIELD_OF_OPTION[option]
    model = ArgoSettings.model_fields[group].annotation
    assert isinstance(model, type)
    assert issubclass(model, BaseModel)
    value = model.model_fields[key].get_default(call_default_factory=True)
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
