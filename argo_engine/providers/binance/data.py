"""Binance market data behind the :class:`~argo_engine.ports.MarketDataFeed` port.

``history`` pages through ``GET /api/v3/klines`` (1000 rows a page, next page from the last
close time + 1) and never returns the still-open kline. ``stream`` opens one combined websocket
for all symbols and yields only closed klines (``x: true``), bar time = kline open time.

No bar is missed or repeated across disconnects: on every (re)connect the feed first
subscribes, then fills over REST everything that closed since the last bar it yielded, then
drains the websocket messages that arrived meanwhile, keeping per symbol only bars newer than
the last one yielded. A websocket bar that skips ahead (a kline the socket never delivered)
triggers the same REST fill for the hole. Waiting (retries, reconnects) goes through the
injected clock, so tests with a ``FakeClock`` never sleep.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import datetime

import orjson

from argo_engine.clock import Clock, LiveClock
from argo_engine.domain.enums import ProviderStatus
from argo_engine.domain.intervals import check_interval, next_open, open_of
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError, DataError, ProviderUnavailable
from argo_engine.providers.binance.client import (
    BinanceApiError,
    BinanceRestClient,
    RequestInterrupted,
    RetryPolicy,
    WebSocketPump,
    WsClosed,
    WsConnected,
    WsEvent,
    WsMessage,
)
from argo_engine.providers.binance.parsing import (
    datetime_to_ms,
    ms_to_datetime,
    parse_rest_kline,
    parse_ws_message,
)
from argo_engine.settings import validate_symbol

log = logging.getLogger(__name__)

_INVALID_SYMBOL = -1121
_PAGE_LIMIT = 1000
# How often the consumer looks at the stop event while no websocket message arrives.
_POLL_S = 0.05


class BinanceFeed:
    """Closed Binance klines of a set of symbols: REST history and a websocket stream.

    Args:
        symbols: Symbols, e.g. ``["BTCUSDT", "ETHUSDT"]``.
        interval: Kline interval (``1s``, ``1m`` ... ``1w``); anything else is refused.
        rest_url: REST base URL (``https://api.binance.com`` or a mock).
        ws_url: Websocket base URL (``wss://stream.binance.com:9443`` or a mock).
        clock: Clock used for retry and reconnect waits.
        start: Open time of the first bar the stream must yield; bars from there up to the
            moment of connecting are filled over REST. None: the stream starts with the kline
            open at the moment it connects.
        on_status: Called with CONNECTED/DISCONNECTED when the websocket state changes (from
            the thread iterating the stream).
        retry: Backoff of REST requests (429/418 wait ``Retry-After`` instead).
        reconnect: Backoff of websocket reconnects; ``max_attempts`` consecutive failures
            end the stream with ProviderUnavailable.
        timeout_s: HTTP and websocket-handshake timeout.
        end: The stream ends once every symbol reached this open time (exclusive).
        bars: The stream ends once every symbol yielded this many bars.

    Raises:
        ConfigurationError: Unsupported interval, invalid symbol or URL.
    """

    def __init__(
        self,
        *,
        symbols: Sequence[str],
        interval: str,
        rest_url: str,
        ws_url: str,
        clock: Clock | None = None,
        start: datetime | None = None,
        on_status: Callable[[ProviderStatus], object] | None = None,
        retry: RetryPolicy | None = None,
        reconnect: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        end: datetime | None = None,
        bars: int | None = None,
    ) -> None:
        # Fail up front on intervals Binance (or we) cannot serve; never fall back to 1m.
        self.interval = check_interval(interval)
        if not symbols:
            raise ConfigurationError("the Binance feed needs at least one symbol", field="symbols")
        self.symbols = [validate_symbol(s) for s in symbols]
        self._symbol_set = frozenset(self.symbols)
        if not ws_url.startswith(("ws://", "wss://")):
            raise ConfigurationError(
                f"Binance websocket URL must start with ws:// or wss://, got {ws_url!r}",
                field="feed.binance_ws_url",
            )
        if start is not None and start.tzinfo is None:
            raise ConfigurationError("feed start must be timezone-aware", field="feed.start")
        if end is not None and end.tzinfo is None:
            raise ConfigurationError("feed end must be timezone-aware", field="feed.end")
        if bars is not None and bars <= 0:
            raise ConfigurationError("bars must be positive", field="feed.bars")
        self.end = end
        self.bars = bars
        base = ws_url.rstrip("/")
        base = base.removesuffix("/ws").removesuffix("/stream")
        streams = "/".join(f"{s.lower()}@kline_{interval}" for s in self.symbols)
        self.stream_url = f"{base}/stream?streams={streams}"
        self.clock = clock or LiveClock()
        self.reconnect = reconnect or RetryPolicy(max_attempts=10, base_delay_s=1.0)
        self.timeout_s = timeout_s
        self.on_status = on_status
        self.status = ProviderStatus.DISCONNECTED
        self._rest = BinanceRestClient(rest_url, clock=self.clock, retry=retry, timeout_s=timeout_s)
        self._origin = start
        self._last: dict[str, datetime] = {}
        self._closing = threading.Event()
        self._symbols_checked = False

    def __repr__(self) -> str:
        return f"BinanceFeed(symbols={self.symbols!r}, interval={self.interval!r})"

    # -- port --------------------------------------------------------------------------------------

    def history(self, symbol: str, start: datetime, end: datetime) -> list[Bar]:
        """Closed bars of ``symbol`` with ``start <= time < end``, oldest first.

        Raises:
            ConfigurationError: Unknown symbol.
            ProviderUnavailable: Binance unreachable or rate limiting after the retries.
        """
        server_ms = self._rest.server_time_ms(stop=self._closing)
        return self._fetch(
            symbol, datetime_to_ms(start), datetime_to_ms(end), server_ms, self._closing
        )

    def stream(self, stop: threading.Event) -> Iterator[Bar]:
        """Yield closed bars of every symbol until ``stop`` is set or the bounds are reached.

        With ``end`` and/or ``bars`` the stream ends once every symbol reached its bound
        (bars at or after ``end`` are never yielded).

        Raises:
            ProviderUnavailable: The websocket could not be (re)opened after the reconnect
                policy's attempts, or the REST gap fill failed after its retries.
            ConfigurationError: Unknown symbol.
        """
        if self.end is None and self.bars is None:
            yield from self._stream(stop)
            return
        counts = dict.fromkeys(self.symbols, 0)
        done: set[str] = set()
        inner = self._stream(stop)
        try:
            for bar in inner:
                symbol = bar.symbol
                if symbol in done:
                    continue
                if self.end is not None and bar.time >= self.end:
                    done.add(symbol)
                else:
                    yield bar
                    counts[symbol] += 1
                    if (self.bars is not None and counts[symbol] >= self.bars) or (
                        self.end is not None and next_open(bar.time, self.interval) >= self.end
                    ):
                        done.add(symbol)
                if len(done) == len(self.symbols):
                    return
        finally:
            inner.close()  # closes the websocket pump

    def _stream(self, stop: threading.Event) -> Generator[Bar, None, None]:
        self._check_symbols(stop)
        events: queue.Queue[WsEvent] = queue.Queue()
        pump = WebSocketPump(events, open_timeout_s=self.timeout_s)
        generation = 0
        failures = 0
        pump.connect(self.stream_url, generation)
        try:
            while not stop.is_set() and not self._closing.is_set():
                try:
                    event = events.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if event.generation != generation:
                    continue  # leftovers of a connection we already gave up
                if isinstance(event, WsConnected):
                    failures = 0
                    self._set_status(ProviderStatus.CONNECTED)
                    yield from self._fill_after_connect(stop)
                elif isinstance(event, WsMessage):
                    bar = self._final_bar(event.payload)
                    if bar is not None:
                        yield from self._accept(bar, stop)
                elif isinstance(event, WsClosed):
                    self._set_status(ProviderStatus.DISCONNECTED)
                    failures += 1
                    if failures >= self.reconnect.max_attempts:
                        raise ProviderUnavailable(
                            f"Binance websocket unavailable after {failures} attempts: "
                            f"{event.reason}",
                            url=self.stream_url,
                        )
                    delay = self.reconnect.delay(failures)
                    log.warning(
                        "Binance websocket closed (%s); reconnecting in %.1fs", event.reason, delay
                    )
                    if self.clock.wait(delay, stop):
                        break
                    generation += 1
                    pump.connect(self.stream_url, generation)
        except RequestInterrupted:
            return  # stop was set during a REST retry wait
        finally:
            pump.close()
            self._set_status(ProviderStatus.DISCONNECTED)

    def close(self) -> None:
        """Stop waits in progress and close the HTTP connections."""
        self._closing.set()
        self._rest.close()

    # -- internals ---------------------------------------------------------------------------------

    def _set_status(self, status: ProviderStatus) -> None:
        if status is self.status:
            return
        self.status = status
        if self.on_status is not None:
            self.on_status(status)

    def _check_symbols(self, stop: threading.Event) -> None:
        if self._symbols_checked:
            return
        symbols = orjson.dumps(self.symbols).decode()
        try:
            self._rest.get("/api/v3/exchangeInfo", {"symbols": symbols}, stop=stop)
        except BinanceApiError as exc:
            if exc.code == _INVALID_SYMBOL:
                raise ConfigurationError(
                    f"Binance does not know one of the symbols {self.symbols}: {exc.venue_message}",
                    field="symbols",
                ) from exc
            raise
        self._symbols_checked = True

    def _final_bar(self, payload: object) -> Bar | None:
        if not isinstance(payload, dict):
            return None
        try:
            kline = parse_ws_message(payload)
        except DataError as exc:
            log.warning("ignoring a malformed Binance kline: %s", exc)
            return None
        if kline is None or not kline.final or kline.bar.symbol not in self._symbol_set:
            return None
        return kline.bar

    def _expected(self, symbol: str) -> datetime | None:
        last = self._last.get(symbol)
        return next_open(last, self.interval) if last is not None else self._origin

    def _accept(self, bar: Bar, stop: threading.Event) -> Iterator[Bar]:
        last = self._last.get(bar.symbol)
        if last is not None and bar.time <= last:
            return  # already yielded (gap fill and socket overlap) or out of order
        expected = self._expected(bar.symbol)
        if expected is not None and bar.time > expected:
            # The socket skipped klines: fetch the hole (every kline before a closed one is
            # closed too, so no server time is needed).
            hole = self._fetch(
                bar.symbol, datetime_to_ms(expected), datetime_to_ms(bar.time), None, stop
            )
            yield from self._emit(hole)
        yield from self._emit([bar])

    def _emit(self, bars: Sequence[Bar]) -> Iterator[Bar]:
        for bar in bars:
            last = self._last.get(bar.symbol)
            if last is not None and bar.time <= last:
                continue
            self._last[bar.symbol] = bar.time
            yield bar

    def _fill_after_connect(self, stop: threading.Event) -> Iterator[Bar]:
        server_ms = self._rest.server_time_ms(stop=stop)
        if self._origin is None:
            # First connection without a start: begin with the kline open right now.
            self._origin = open_of(ms_to_datetime(server_ms), self.interval)
        for symbol in self.symbols:
            expected = self._expected(symbol)
            assert expected is not None
            if datetime_to_ms(next_open(expected, self.interval)) <= server_ms:
                bars = self._fetch(symbol, datetime_to_ms(expected), server_ms, server_ms, stop)
                yield from self._emit(bars)

    def _fetch(
        self,
        symbol: str,
        start_ms: int,
        end_ms: int,
        server_ms: int | None,
        stop: threading.Event,
    ) -> list[Bar]:
        bars: list[Bar] = []
        cursor = start_ms
        while cursor < end_ms:
            params = [
                ("symbol", symbol),
                ("interval", self.interval),
                ("startTime", cursor),
                ("endTime", end_ms - 1),
                ("limit", _PAGE_LIMIT),
            ]
            try:
                rows = self._rest.get("/api/v3/klines", params, stop=stop)
            except BinanceApiError as exc:
                if exc.code == _INVALID_SYMBOL:
                    raise ConfigurationError(
                        f"Binance does not know the symbol {symbol!r}", field="symbols"
                    ) from exc
                raise
            if not isinstance(rows, list) or not rows:
                break
            open_seen = False
            for row in rows:
                kline = parse_rest_kline(symbol, row)
                if server_ms is not None and kline.close_ms >= server_ms:
                    open_seen = True  # the still-open kline: partial values, never yielded
                    continue
                t_ms = datetime_to_ms(kline.bar.time)
                if t_ms < start_ms or t_ms >= end_ms:
                    continue
                if bars and kline.bar.time <= bars[-1].time:
                    continue
                bars.append(kline.bar)
            if open_seen or len(rows) < _PAGE_LIMIT:
                break
            cursor = int(rows[-1][6]) + 1
        return bars
