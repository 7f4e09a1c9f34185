"""Binance I/O: a REST client (optionally signed) and a websocket pump. Nothing else.

This is the one place where httpx and websockets exceptions are caught; callers only ever see
the argo error tree:

- network errors, HTTP 5xx, 429 and 418 -> :class:`~argo_engine.errors.ProviderUnavailable`
  (after the retries the caller allowed; ``Retry-After`` is honoured through the clock);
- HTTP 401/403 and codes -2015/-2014/-2008/-1022 ->
  :class:`~argo_engine.errors.AuthenticationError`;
- any other Binance error code -> :class:`BinanceApiError` (terminal, carries ``code``).

Secrets: the API key only travels in the ``X-MBX-APIKEY`` header and the secret only feeds the
HMAC; neither appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from pydantic import SecretStr
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from argo_engine.clock import Clock
from argo_engine.errors import (
    AuthenticationError,
    ConfigurationError,
    ProviderUnavailable,
    TerminalError,
)
from argo_engine.providers.binance.parsing import datetime_to_ms, parse_error

log = logging.getLogger(__name__)

# Codes Binance uses when the key, its permissions or the signature are refused.
_AUTH_CODES = frozenset({-2008, -2014, -2015, -1022})
_TIMESTAMP_CODE = -1021  # timestamp outside recvWindow: our clock offset is stale
_TOO_MANY_REQUESTS = -1003


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Deterministic exponential backoff (no jitter: tests replay the exact waits).

    Attributes:
        max_attempts: Attempts in total, the first one included.
        base_delay_s: Wait after the first failure.
        factor: Growth of the wait per further failure.
        max_delay_s: Cap of one wait.
        max_retry_after_s: A ``Retry-After`` longer than this is not waited for (an IP ban
            of hours): the request fails at once with ProviderUnavailable.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, failures: int) -> float:
        """Wait before the next attempt after ``failures`` consecutive failures (>= 1)."""
        return min(self.max_delay_s, self.base_delay_s * self.factor ** max(failures - 1, 0))


class BinanceApiError(TerminalError):
    """Binance refused a request with an error code (not auth, not a rate limit).

    Attributes (in ``attrs``): ``status`` (HTTP status), ``code`` (Binance code or None) and
    ``venue_message`` (Binance's ``msg``).
    """

    @property
    def code(self) -> int | None:
        """Binance error code, e.g. -2010 (order rejected) or -1121 (invalid symbol)."""
        code = self.attrs.get("code")
        return int(code) if code is not None else None

    @property
    def status(self) -> int:
        """HTTP status."""
        return int(self.attrs.get("status", 0))

    @property
    def venue_message(self) -> str:
        """Binance's own message."""
        return str(self.attrs.get("venue_message", ""))


class RequestInterrupted(ProviderUnavailable):
    """A retry wait was cut short because the caller's stop event was set."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _StaleTimestamp(Exception):
    pass


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class BinanceRestClient:
    """Binance REST over httpx, with signing, time-offset correction and retries.

    Args:
        base_url: REST base URL, e.g. ``https://api.binance.com``.
        clock: Source of time for timestamps and of waiting between retries.
        api_key: API key (only needed for signed endpoints).
        api_secret: API secret used for HMAC-SHA256 signatures.
        recv_window_ms: ``recvWindow`` sent with signed requests.
        retry: Backoff policy of retried requests.
        timeout_s: Connect/read timeout of one HTTP request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        clock: Clock,
        api_key: SecretStr | None = None,
        api_secret: SecretStr | None = None,
        recv_window_ms: int = 5000,
        retry: RetryPolicy | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"Binance REST URL must start with http:// or https://, got {base_url!r}",
                field="rest_url",
            )
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.recv_window_ms = recv_window_ms
        self._api_key = api_key or SecretStr("")
        self._api_secret = api_secret or SecretStr("")
        self._offset_ms: int | None = None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"User-Agent": "argo-engine"},
        )

    def __repr__(self) -> str:
        return f"BinanceRestClient(base_url={self.base_url!r})"

    # -- public ------------------------------------------------------------------------------------

    def get(
        self,
        path: str,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        *,
        signed: bool = False,
        retry: bool = True,
        stop: threading.Event | None = None,
    ) -> Any:
        """GET ``path``; see :meth:`request`."""
        return self.request("GET", path, params, signed=signed, retry=retry, stop=stop)

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        *,
        signed: bool = False,
        retry: bool = True,
        stop: threading.Event | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body.

        Args:
            method: ``GET``, ``POST`` or ``DELETE``.
            path: Path below the base URL, e.g. ``/api/v3/klines``.
            params: Query parameters (sent in the query string, also for POST/DELETE).
            signed: Add ``timestamp``/``recvWindow`` and an HMAC-SHA256 ``signature``.
            retry: Retry network errors, 5xx, 429 and 418 per the retry policy. Requests that
                change state (orders) pass False: a lost answer must not place twice.
            stop: Cuts retry waits short (raises :class:`RequestInterrupted`).

        Raises:
            ProviderUnavailable: Network error, 5xx or rate limit (after retries).
            AuthenticationError: Key, permissions or signature refused.
            BinanceApiError: Any other Binance error code.
            ConfigurationError: A signed request without API key and secret.
        """
        items = list(params.items() if isinstance(params, Mapping) else (params or ()))
        attempts = self.retry.max_attempts if retry else 1
        failures = 0
        resynced = False
        while True:
            try:
                return self._once(method, path, items, signed)
            except _StaleTimestamp:
                # Our clock drifted from Binance's: measure the offset again, retry once.
                if resynced:
                    raise ProviderUnavailable(
                        f"Binance keeps refusing the request timestamp of {method} {path} "
                        "(code -1021) after a time resync",
                        path=path,
                    ) from None
                resynced = True
                self.sync_time(stop=stop)
            except _Retryable as exc:
                failures += 1
                wait = exc.retry_after if exc.retry_after is not None else None
                if wait is not None and wait > self.retry.max_retry_after_s:
                    raise ProviderUnavailable(
                        f"{exc}; Binance asks to wait {wait:.0f}s",
                        path=path,
                        retry_after=wait,
                    ) from exc
                if failures >= attempts:
                    raise ProviderUnavailable(
                        f"{exc} (after {failures} attempt{'s' if failures > 1 else ''})",
                        path=path,
                        retry_after=wait,
                    ) from exc
                delay = wait if wait is not None else self.retry.delay(failures)
                log.warning(
                    "%s; retrying in %.1fs (attempt %d/%d)", exc, delay, failures + 1, attempts
                )
                if self.clock.wait(delay, stop):
                    raise RequestInterrupted(
                        f"{method} {path} interrupted by stop", path=path
                    ) from None

    def server_time_ms(self, *, stop: threading.Event | None = None) -> int:
        """Binance server time (``GET /api/v3/time``) in epoch ms."""
        body = self.get("/api/v3/time", stop=stop)
        return int(body["serverTime"])

    def sync_time(self, *, stop: threading.Event | None = None) -> int:
        """Measure and store the offset between Binance's clock and ours; return it (ms)."""
        before = datetime_to_ms(self.clock.now())
        server = self.server_time_ms(stop=stop)
        after = datetime_to_ms(self.clock.now())
        self._offset_ms = server - (before + after) // 2
        return self._offset_ms

    def timestamp_ms(self) -> int:
        """Our time corrected to Binance's clock (syncs the offset on first use)."""
        if self._offset_ms is None:
            self.sync_time()
        assert self._offset_ms is not None
        return datetime_to_ms(self.clock.now()) + self._offset_ms

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    # -- internals ---------------------------------------------------------------------------------

    def _sign(self, query: str) -> str:
        secret = self._api_secret.get_secret_value().encode()
        return hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()

    def _once(self, method: str, path: str, items: list[tuple[str, Any]], signed: bool) -> Any:
        headers: dict[str, str] = {}
        if signed:
            if not self._api_key.get_secret_value() or not self._api_secret.get_secret_value():
                raise ConfigurationError(
                    "Binance API key and secret are required for signed requests "
                    "(ARGO_BROKER__API_KEY / ARGO_BROKER__API_SECRET)",
                    field="broker.api_key",
                )
            items = [
                *items,
                ("recvWindow", self.recv_window_ms),
                ("timestamp", self.timestamp_ms()),
            ]
        query = urlencode([(k, _param(v)) for k, v in items])
        if signed:
            query += ("&" if query else "") + "signature=" + self._sign(query)
            headers["X-MBX-APIKEY"] = self._api_key.get_secret_value()
        url = path + ("?" + query if query else "")
        try:
            response = self._http.request(method, url, headers=headers)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"Binance {method} {path} timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise _Retryable(
                f"Binance {method} {path} failed: network error ({type(exc).__name__}: {exc})"
            ) from exc
        status = response.status_code
        if status in (418, 429):
            raise _Retryable(
                f"Binance {method} {path} rate limited (HTTP {status})", _retry_after(response)
            )
        if status >= 500:
            raise _Retryable(f"Binance {method} {path} failed with HTTP {status}")
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        if status < 400:
            if body is None:
                raise _Retryable(f"Binance {method} {path} answered HTTP {status} without JSON")
            return body
        code, msg = parse_error(body)
        if status in (401, 403) or code in _AUTH_CODES:
            raise AuthenticationError(
                f"Binance refused the credentials for {method} {path}: {msg or 'no message'} "
                f"(code {code}, HTTP {status})",
                path=path,
                code=code,
                status=status,
            )
        if code == _TIMESTAMP_CODE and signed:
            raise _StaleTimestamp()
        if code == _TOO_MANY_REQUESTS:
            raise _Retryable(
                f"Binance {method} {path} rate limited (code {code})", _retry_after(response)
            )
        raise BinanceApiError(
            f"Binance rejected {method} {path}: {msg or 'no message'} (code {code}, HTTP {status})",
            path=path,
            code=code,
            status=status,
            venue_message=msg,
        )


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- websocket -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WsConnected:
    """The connection of ``generation`` is open."""

    generation: int


@dataclass(frozen=True, slots=True)
class WsMessage:
    """A decoded JSON message received on connection ``generation``."""

    generation: int
    payload: Any


@dataclass(frozen=True, slots=True)
class WsClosed:
    """Connection ``generation`` ended (or never opened); ``reason`` says why."""

    generation: int
    reason: str


WsEvent = WsConnected | WsMessage | WsClosed


class WebSocketPump:
    """Runs one websocket connection at a time on a private asyncio loop in a daemon thread.

    Everything the connection produces (open, messages, close) lands in ``events`` in order,
    tagged with the connection's generation number, so a synchronous consumer can drive
    reconnects itself and ignore leftovers of an older connection.

    Args:
        events: Queue receiving :data:`WsEvent` items.
        open_timeout_s: Handshake timeout.
        ping_interval_s: Keep-alive ping interval (a dead TCP peer is noticed after
            ``ping_interval_s`` + ``ping_timeout_s``).
        ping_timeout_s: Pong deadline.
    """

    def __init__(
        self,
        events: queue.Queue[WsEvent],
        *,
        open_timeout_s: float = 10.0,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 20.0,
    ) -> None:
        self.events = events
        self.open_timeout_s = open_timeout_s
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="binance-ws", daemon=True
        )
        self._current: asyncio.Task[None] | None = None
        self._thread.start()

    def connect(self, url: str, generation: int) -> None:
        """Open a connection to ``url`` (closing the previous one first)."""
        self.disconnect()

        async def start() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(self._run(url, generation))

        self._current = asyncio.run_coroutine_threadsafe(start(), self._loop).result()

    def disconnect(self) -> None:
        """Close the current connection, if any, and wait until it is gone."""
        current, self._current = self._current, None
        if current is None or current.done():
            return

        async def cancel() -> None:
            current.cancel()
            # The close handshake is bounded by close_timeout; nothing is left pending.
            await asyncio.gather(current, return_exceptions=True)

        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(timeout=10.0)

    def close(self) -> None:
        """Close the connection and stop the thread."""
        if self._loop.is_closed():
            return
        self.disconnect()
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive() and not self._loop.is_running():
            self._loop.close()

    async def _run(self, url: str, generation: int) -> None:
        put = self.events.put
        try:
            async with ws_connect(
                url,
                open_timeout=self.open_timeout_s,
                ping_interval=self.ping_interval_s,
                ping_timeout=self.ping_timeout_s,
                close_timeout=2.0,
                max_size=2**22,
                proxy=None,
            ) as ws:
                put(WsConnected(generation))
                async for raw in ws:
                    try:
                        payload = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        log.warning("ignoring a non-JSON websocket message from Binance")
                        continue
                    put(WsMessage(generation, payload))
            put(WsClosed(generation, "closed by the server"))
        except asyncio.CancelledError:
            put(WsClosed(generation, "closed by us"))
            raise
        except (OSError, TimeoutError, WebSocketException) as exc:
            put(WsClosed(generation, f"{type(exc).__name__}: {exc}"))
