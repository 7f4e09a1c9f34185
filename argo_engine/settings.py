"""Settings: one pydantic-settings root with nested groups.

Environment variables are ``ARGO_<GROUP>__<FIELD>`` (e.g. ``ARGO_SESSION__TIMEZONE``), also read
from a ``.env`` file. Settings are loaded once by the entry point (CLI or flow) through
:func:`load_settings` and passed down explicitly; nothing in the library reads the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from argo_engine.domain.intervals import SUPPORTED_INTERVALS
from argo_engine.errors import ConfigurationError

SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
SESSION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def validate_symbol(symbol: str) -> str:
    """Check a symbol is safe to use in paths and venue requests.

    Args:
        symbol: Candidate symbol.

    Returns:
        The symbol, unchanged.

    Raises:
        ConfigurationError: If it is empty, lower case, or could escape a directory.
    """
    if not SYMBOL_RE.match(symbol):
        raise ConfigurationError(
            f"invalid symbol {symbol!r}: use 1-32 upper-case letters, digits, '_' or '-'",
            field="symbols",
        )
    return symbol


def validate_session_id(session_id: str) -> str:
    """Check a session id is safe to use in files and paths.

    Raises:
        ConfigurationError: If it contains path separators, dots or other characters.
    """
    if not SESSION_ID_RE.match(session_id):
        raise ConfigurationError(
            f"invalid session id {session_id!r}: use letters, digits, '_' or '-' (max 128)",
            field="session_id",
        )
    return session_id


# Bounds of the numeric settings: generous for any real session, tight enough that a typo
# (an extra digit, a value in the wrong unit) is refused before it writes 1.4 GB of folders.
MAX_BARS = 100_000_000  # 3 years of 1s bars per symbol
MAX_PREFETCH_DAYS = 3650
MAX_SECONDS = 86_400.0  # one day, for every interval and timeout setting
MAX_AMOUNT = 1e15
# Longest length of one interval unit (a month counts 31 days).
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 31 * 86400}
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class _Group(BaseModel):
    # inf and NaN are never a valid amount, interval or rate.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SessionSettings(_Group):
    """What is traded and where the session writes."""

    data_output: Path = Field(
        default=Path("./data/live-trading"),
        description="Root folder of the per-day run folders ({date}/run_N).",
    )
    session_id: str | None = Field(
        default=None,
        description="Session id to start or resume; a new one is generated when empty.",
    )
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT"],
        description="Symbols to trade, comma separated (e.g. BTCUSDT,ETHUSDT).",
    )
    interval: str = Field(default="1m", description="Bar interval, e.g. 1s, 1m, 5m, 1h, 1d.")
    timezone: str = Field(
        default="UTC", description="IANA time zone that decides the trading date of a bar."
    )
    day_start: time | None = Field(
        default=None,
        description="Local time at which a trading date starts (e.g. 17:00); midnight if empty.",
    )
    initial_capital: float = Field(
        default=100_000.0,
        gt=0,
        le=MAX_AMOUNT,
        description="Starting cash of the paper account and equity curve.",
    )
    pnl_method: Literal["fifo", "average_cost"] = Field(
        default="fifo", description="Realized PnL method: fifo or average_cost."
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one symbol is required")
        for symbol in value:
            if not SYMBOL_RE.match(symbol):
                raise ValueError(
                    f"invalid symbol {symbol!r}: use 1-32 upper-case letters, digits, '_' or '-'"
                )
        if len(set(value)) != len(value):
            raise ValueError("symbols must be unique")
        return value

    @field_validator("session_id")
    @classmethod
    def _check_session_id(cls, value: str | None) -> str | None:
        if value is not None and not SESSION_ID_RE.match(value):
            raise ValueError("use letters, digits, '_' or '-' (max 128)")
        return value or None

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        # The Binance set only: every feed aligns bars as Binance does, and a run must not
        # start (and allocate its folder) on an interval no feed can serve.
        if value not in SUPPORTED_INTERVALS:
            raise ValueError(
                f"unsupported interval {value!r}; use one of {', '.join(SUPPORTED_INTERVALS)}"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class FeedSettings(_Group):
    """Market-data feed."""

    kind: Literal["synthetic", "replay", "binance"] = Field(
        default="synthetic", description="Feed: synthetic (seeded random walk), replay, binance."
    )
    replay_file: Path | None = Field(
        default=None, description="Parquet file with market_data columns for the replay feed."
    )
    start: datetime | None = Field(
        default=None,
        description="First bar time (ISO 8601, UTC if no offset); default 2025-10-01T09:00Z.",
    )
    end: datetime | None = Field(
        default=None, description="Stop before this bar time (ISO 8601); exclusive."
    )
    bars: int | None = Field(
        default=None,
        gt=0,
        le=MAX_BARS,
        description="Number of bars per symbol (synthetic default 500).",
    )
    pace: Literal["fast", "realtime"] = Field(
        default="fast", description="fast: as fast as possible; realtime: one bar per interval."
    )
    seed: int = Field(
        default=42, ge=0, le=2**63 - 1, description="Seed of the synthetic random walk."
    )
    binance_rest_url: str = Field(
        default="https://api.binance.com", description="Binance REST base URL for market data."
    )
    binance_ws_url: str = Field(
        default="wss://stream.binance.com:9443", description="Binance websocket base URL."
    )
    prefetch_days: int = Field(
        default=0,
        ge=0,
        le=MAX_PREFETCH_DAYS,
        description="Days of history to load before streaming (warm-up).",
    )

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and not EARLIEST <= value < LATEST:
            raise ValueError(
                f"{value.isoformat()} is outside {EARLIEST.year}-01-01..{LATEST.year}-01-01"
            )
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if value is not None and start is not None and value <= start:
            raise ValueError(f"end {value.isoformat()} must be after start {start.isoformat()}")
        return value


class BrokerSettings(_Group):
    """Broker the orders go to."""

    kind: Literal["paper", "binance-testnet", "binance-live"] = Field(
        default="paper", description="Broker: paper, binance-testnet, binance-live."
    )
    commission: Literal["zero", "fixed_rate", "per_share"] = Field(
        default="fixed_rate",
        description="Paper commission model: zero, fixed_rate (rate x notional), per_share.",
    )
    commission_rate: float = Field(
        default=0.001, ge=0, le=1, description="Rate of notional for fixed_rate (0.001 = 0.1%)."
    )
    per_share_fee: float = Field(
        default=0.005, ge=0, le=MAX_AMOUNT, description="Fee per unit for per_share."
    )
    per_share_minimum: float = Field(
        default=1.0, ge=0, le=MAX_AMOUNT, description="Minimum fee per order for per_share."
    )
    base_url: str = Field(
        default="https://testnet.binance.vision", description="Binance broker REST base URL."
    )
    api_key: SecretStr = Field(default=SecretStr(""), description="Binance API key (secret).")
    api_secret: SecretStr = Field(default=SecretStr(""), description="Binance API secret.")
    allow_live: bool = Field(
        default=False, description="Must be true to use binance-live (real money)."
    )
    # Binance refuses a recvWindow above 60 s.
    recv_window_ms: int = Field(
        default=5000, gt=0, le=60_000, description="Binance recvWindow in ms."
    )
    poll_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=MAX_SECONDS,
        description="Min seconds between two polls of a symbol's open orders at the venue.",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=MAX_SECONDS, description="HTTP timeout of broker requests."
    )


class StrategySettings(_Group):
    """Strategy to run."""

    name: str = Field(
        default="rsi", description="Registered strategy name or module:Class for user strategies."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Strategy parameters as a JSON object."
    )
    slow_bar_s: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SECONDS,
        description="A bar handled slower than this is recorded as a StrategyError (warning).",
    )


class PersistenceSettings(_Group):
    """How data reaches disk."""

    flush_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=MAX_SECONDS,
        description="Max seconds until market data, marks and logs are durable on disk.",
    )
    parquet_interval_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SECONDS,
        description=(
            "Min seconds between two versions of a parquet file: readers may see new rows this "
            "late (durability is the flush interval's). Longer writes fewer bytes per row when "
            "rows trickle in. Default: the flush interval."
        ),
    )
    max_write_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Max share of time spent rewriting parquet files; spaces out big rewrites.",
    )
    stats_min_interval_s: float = Field(
        default=0.05,
        ge=0,
        le=MAX_SECONDS,
        description="Min seconds between stats.yaml writes after fills (bounds fast replays).",
    )
    history_bars: int = Field(
        default=500,
        gt=0,
        le=1_000_000,
        description="Bars per symbol kept in memory for strategy history.",
    )
    paper_fsync: Literal["batched", "per_order"] = Field(
        default="batched",
        description=(
            "With a broker whose book lives in this process (paper): 'batched' fsyncs orders "
            "and fills with the next stats.yaml write (off the engine thread, within "
            "stats_min_interval_s); 'per_order' fsyncs each order's outcome before going on. "
            "Venue brokers always fsync an order before it is sent."
        ),
    )
    background_flush: bool = Field(
        default=True,
        description=(
            "Run periodic flushes (journal fsync, parquet, state, stats.yaml) on a flusher "
            "thread so bars never wait for the disk; orders and fills stay fsynced inline."
        ),
    )


class ArgoSettings(BaseSettings):
    """Root of all argo-engine settings (``ARGO_`` prefix, ``__`` between group and field)."""

    model_config = SettingsConfigDict(
        env_prefix="ARGO_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    session: SessionSettings = Field(
        default_factory=SessionSettings, description="What is traded and where data goes."
    )
    feed: FeedSettings = Field(default_factory=FeedSettings, description="Market-data feed.")
    broker: BrokerSettings = Field(default_factory=BrokerSettings, description="Broker.")
    strategy: StrategySettings = Field(
        default_factory=StrategySettings, description="Strategy and its parameters."
    )
    persistence: PersistenceSettings = Field(
        default_factory=PersistenceSettings, description="Durability and flush cadence."
    )
    log_level: str = Field(default="INFO", description="Log level of the engine loggers.")

    @model_validator(mode="after")
    def _bars_end_in_time(self) -> ArgoSettings:
        # --bars of --interval from --start must end before LATEST: a count that runs past it
        # (or past year 9999, where datetime overflows) is a typo, not a session.
        bars, interval = self.feed.bars, self.session.interval
        if bars is None:
            return self
        step = int(interval[:-1]) * _UNIT_SECONDS[interval[-1]]
        start = self.feed.start or datetime(2025, 10, 1, 9, tzinfo=UTC)
        if bars * step >= (LATEST - start).total_seconds():
            raise ValueError(
                f"feed.bars {bars} of {interval} from {start.isoformat()} would run past "
                f"{LATEST.year}-01-01; use fewer bars or a shorter interval"
            )
        return self


def load_settings(
    _env_file: str | Path | None = ".env",
    *,
    _options: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ArgoSettings:
    """Load settings from the environment, ``.env`` and explicit overrides.

    Args:
        _env_file: The dotenv file to read, or None for none.
        _options: Command-line option of a settings field (``{"feed.end": "--end"}``), named
            in error messages beside the environment variable.
        **overrides: Group dicts that win over the environment, e.g. ``session={"symbols": ...}``.

    Returns:
        Validated, frozen settings.

    Raises:
        ConfigurationError: If any field is invalid; the message names the field(s).
    """
    try:
        return ArgoSettings(_env_file=_env_file, **overrides)
    except ValidationError as exc:
        raise configuration_error(exc, _options) from None


def configuration_error(
    exc: ValidationError, options: Mapping[str, str] | None = None
) -> ConfigurationError:
    """Turn a pydantic ValidationError into a ConfigurationError naming the fields.

    Each problem names the field, its environment variable and, when ``options`` has one, the
    command-line option that sets it.
    """
    problems = []
    fields = []
    for err in exc.errors():
        if not err["loc"]:  # a check across groups: its message names the settings
            fields.append("<root>")
            problems.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        loc = err["loc"]
        name = ".".join(str(p) for p in loc)
        fields.append(name)
        env = "ARGO_" + "__".join(str(p).upper() for p in loc[:2])
        option = (options or {}).get(".".join(str(p) for p in loc[:2]))
        where = f"{option}, {env}" if option else env
        # pydantic prefixes messages of our own validators; the field name says enough.
        message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(f"{name} ({where}): {message}")
    return ConfigurationError("invalid settings: " + "; ".join(problems), fields=fields)


def env_var_names() -> list[str]:
    """Every environment variable name the settings accept, in declaration order."""
    names: list[str] = []
    for group_name, group_field in ArgoSettings.model_fields.items():
        annotation = group_field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(
                f"ARGO_{group_name.upper()}__{field.upper()}" for field in annotation.model_fields
            )
        else:
            names.append(f"ARGO_{group_name.upper()}")
    return names
