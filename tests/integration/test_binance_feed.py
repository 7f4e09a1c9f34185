"""BinanceFeed against the mock Binance server on 127.0.0.1 (real HTTP and websockets)."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from argo_engine.clock import FakeClock
from argo_engine.domain.enums import ProviderStatus
from argo_engine.domain.market import Bar
from argo_engine.errors import ConfigurationError, ProviderUnavailable, TransientError
from argo_engine.providers.binance.client import RetryPolicy
from argo_engine.providers.binance.data import BinanceFeed
from argo_engine.testing.mock_binance import MockBinance

MINUTE = timedelta(minutes=1)


@pytest.fixture
def mock() -> Iterator[MockBinance]:
    with MockBinance() as server:
        yield server


def make_feed(mock: MockBinance, clock: FakeClock, **kwargs: object) -> BinanceFeed:
    params: dict[str, object] = {
        "symbols": ["BTCUSDT", "ETHUSDT"],
        "interval": "1m",
        "rest_url": mock.rest_url,
        "ws_url": mock.ws_url,
        "clock": clock,
    }
    params.update(kwargs)
    return BinanceFeed(**params)  # type: ignore[arg-type]


class Consumer:
    """Iterates a feed's stream in a thread, so the test thread can drive the mock."""

    def __init__(self, feed: BinanceFeed) -> None:
        self.feed = feed
        self.stop = threading.Event()
        self.bars: queue.Queue[Bar] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for bar in self.feed.stream(self.stop):
                self.bars.put(bar)
        except BaseException as exc:  # handed to the test thread
            self.error = exc

    def take(self, n: int) -> list[Bar]:
        return [self.bars.get(timeout=10) for _ in range(n)]

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.feed.close()


def by_symbol(bars: list[Bar]) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    for bar in bars:
        out.setdefault(bar.symbol, []).append(bar.time)
    return out


# -- history -----------------------------------------------------------------------------------


def test_history_paginates_five_pages_exact_rows_without_duplicates(mock: MockBinance) -> None:
    mock.advance(30)  # the kline opened at 00:00 is half done: it must not be returned
    now = mock.now()
    feed = make_feed(mock, FakeClock())
    start = datetime(2025, 10, 1, tzinfo=now.tzinfo) - 5500 * MINUTE

    bars = feed.history("BTCUSDT", start, now + timedelta(hours=1))

    assert len(bars) == 5500
    assert len({b.time for b in bars}) == 5500
    assert [b.time for b in bars] == [start + i * MINUTE for i in range(5500)]
    assert bars[-1].time == datetime(2025, 9, 30, 23, 59, tzinfo=now.tzinfo)
    pages = mock.requests("/api/v3/klines")
    assert len(pages) == 6
    assert all(p.params["limit"] == "1000" for p in pages)
    # Each page starts right after the previous page's last close time.
    starts = [int(p.params["startTime"]) for p in pages]
    assert [b - a for a, b in itertools.pairwise(starts)] == [1000 * 60_000] * 5
    feed.close()


def test_history_respects_end_exclusive(mock: MockBinance) -> None:
    feed = make_feed(mock, FakeClock())
    end = mock.now() - 10 * MINUTE

    bars = feed.history("ETHUSDT", end - 3 * MINUTE, end)

    assert [b.time for b in bars] == [end - 3 * MINUTE, end - 2 * MINUTE, end - MINUTE]
    feed.close()


@pytest.mark.parametrize("status", [429, 418])
def test_history_rate_limit_waits_retry_after_on_the_clock(mock: MockBinance, status: int) -> None:
    clock = FakeClock()
    feed = make_feed(mock, clock)
    mock.fail_next("/api/v3/klines", status=status, count=2, retry_after=7)
    end = mock.now()

    bars = feed.history("BTCUSDT", end - 5 * MINUTE, end)

    assert len(bars) == 5
    assert [r.status for r in mock.requests("/api/v3/klines")] == [status, status, 200]
    assert clock.monotonic() == 14.0  # two Retry-After waits of 7 s, not the backoff
    feed.close()


def test_history_retry_after_beyond_limit_fails_at_once(mock: MockBinance) -> None:
    clock = FakeClock()
    feed = make_feed(mock, clock, retry=RetryPolicy(max_retry_after_s=60))
    mock.fail_next("/api/v3/klines", status=418, retry_after=3600)

    with pytest.raises(ProviderUnavailable) as info:
        feed.history("BTCUSDT", mock.now() - 5 * MINUTE, mock.now())

    assert info.value.attrs["retry_after"] == 3600
    assert clock.monotonic() == 0.0
    feed.close()


def test_history_retries_5xx_with_deterministic_backoff(mock: MockBinance) -> None:
    clock = FakeClock()
    feed = make_feed(mock, clock)
    mock.fail_next("/api/v3/klines", status=503, count=3)

    bars = feed.history("BTCUSDT", mock.now() - 5 * MINUTE, mock.now())

    assert len(bars) == 5
    assert [r.status for r in mock.requests("/api/v3/klines")] == [503, 503, 503, 200]
    assert clock.monotonic() == 0.5 + 1.0 + 2.0
    feed.close()


def test_history_persistent_5xx_raises_transient_error(mock: MockBinance) -> None:
    clock = FakeClock()
    feed = make_feed(mock, clock, retry=RetryPolicy(max_attempts=4, base_delay_s=1.0))
    mock.fail_next("/api/v3/klines", status=500, count=100)

    with pytest.raises(TransientError):
        feed.history("BTCUSDT", mock.now() - 5 * MINUTE, mock.now())

    assert mock.count("/api/v3/klines") == 4
    assert clock.monotonic() == 1.0 + 2.0 + 4.0
    feed.close()


def test_history_network_error_is_transient(mock: MockBinance) -> None:
    clock = FakeClock()
    rest_url = mock.rest_url
    mock.stop()  # nothing listens on the port any more
    feed = BinanceFeed(
        symbols=["BTCUSDT"],
        interval="1m",
        rest_url=rest_url,
        ws_url="ws://127.0.0.1:9",
        clock=clock,
        retry=RetryPolicy(max_attempts=2),
    )

    with pytest.raises(ProviderUnavailable, match="network error"):
        feed.history("BTCUSDT", datetime(2025, 9, 30, tzinfo=clock.now().tzinfo), clock.now())
    assert clock.monotonic() == 0.5
    feed.close()


@pytest.mark.parametrize("interval", ["7m", "1mo", "2w", "1 m", ""])
def test_unsupported_interval_is_refused_up_front(mock: MockBinance, interval: str) -> None:
    with pytest.raises(ConfigurationError, match="interval"):
        make_feed(mock, FakeClock(), interval=interval)
    assert mock.requests() == []


def test_monthly_klines_step_calendar_months(mock: MockBinance) -> None:
    # 1M klines open on the 1st of each month (28 to 31 days apart), across a year end.
    feed = make_feed(mock, FakeClock(), interval="1M", symbols=["BTCUSDT"])
    start = datetime(2024, 11, 1, tzinfo=mock.now().tzinfo)
    bars = feed.history("BTCUSDT", start, mock.now())
    assert [(b.time.year, b.time.month, b.time.day) for b in bars] == [
        (2024, 11, 1), (2024, 12, 1), (2025, 1, 1), (2025, 2, 1), (2025, 3, 1), (2025, 4, 1),
        (2025, 5, 1), (2025, 6, 1), (2025, 7, 1), (2025, 8, 1), (2025, 9, 1),
    ]  # fmt: skip
    feed.close()
    # Streaming: October closes 31 days in, and only then reaches the consumer.
    consumer = Consumer(make_feed(mock, FakeClock(), interval="1M", symbols=["BTCUSDT"]))
    mock.wait_for_ws(1)
    mock.advance(30 * 86_400)
    mock.advance(86_400)
    [october] = consumer.take(1)
    consumer.finish()
    assert (october.time.month, october.time.day) == (10, 1)
    assert consumer.bars.empty()


def test_unknown_symbol_is_a_configuration_error(mock: MockBinance) -> None:
    feed = make_feed(mock, FakeClock(), symbols=["NOPEUSDT"])
    with pytest.raises(ConfigurationError, match="NOPEUSDT"):
        feed.history("NOPEUSDT", mock.now() - MINUTE, mock.now())
    with pytest.raises(ConfigurationError):
        next(iter(feed.stream(threading.Event())))
    feed.close()


# -- stream ------------------------------------------------------------------------------------


def test_stream_yields_only_closed_klines(mock: MockBinance) -> None:
    mock.advance(20)  # connect in the middle of a kline
    consumer = Consumer(make_feed(mock, FakeClock()))
    mock.wait_for_ws(1)
    mock.advance(3 * 60)  # closes 00:00, 00:01, 00:02; each preceded by in-progress updates

    got = consumer.take(6)
    consumer.finish()

    assert by_symbol(got) == {
        s: [datetime(2025, 10, 1, 0, m, tzinfo=got[0].time.tzinfo) for m in range(3)]
        for s in ("BTCUSDT", "ETHUSDT")
    }
    # Each yielded bar is the closed kline (REST agrees), never one of the partial updates.
    rest = make_feed(mock, FakeClock())
    for symbol in ("BTCUSDT", "ETHUSDT"):
        closed = rest.history(symbol, got[0].time, got[0].time + 3 * MINUTE)
        assert [b for b in got if b.symbol == symbol] == closed
    assert consumer.bars.empty()
    assert consumer.error is None
    rest.close()


def test_stream_heals_a_dropped_websocket_without_gaps_or_duplicates(mock: MockBinance) -> None:
    statuses: list[ProviderStatus] = []
    consumer = Consumer(make_feed(mock, FakeClock(), on_status=statuses.append))
    mock.wait_for_ws(1)
    mock.advance(2 * 60)
    first = consumer.take(4)

    # The socket dies mid-stream: BTC's 00:02 kline gets through (2 updates + final), then
    # the connection drops; 00:03-00:05 of both symbols close while it is down.
    mock.drop_ws_after(4)
    mock.advance(4 * 60)
    mock.wait_for_ws(2)
    healed = consumer.take(8)
    mock.advance(60)
    after = consumer.take(2)
    consumer.finish()

    bars = first + healed + after
    assert consumer.error is None
    tz = bars[0].time.tzinfo
    expected = [datetime(2025, 10, 1, 0, m, tzinfo=tz) for m in range(7)]
    assert by_symbol(bars) == {"BTCUSDT": expected, "ETHUSDT": expected}
    assert consumer.bars.empty()
    assert mock.ws_connections_total == 2
    # Values equal the closed klines, whether they came over the socket or the REST fill.
    rest = make_feed(mock, FakeClock())
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert [b for b in bars if b.symbol == symbol] == rest.history(
            symbol, expected[0], expected[-1] + MINUTE
        )
    rest.close()
    assert statuses == [
        ProviderStatus.CONNECTED,
        ProviderStatus.DISCONNECTED,
        ProviderStatus.CONNECTED,
        ProviderStatus.DISCONNECTED,
    ]


def test_stream_bar_closing_during_gap_fill_is_yielded_once(mock: MockBinance) -> None:
    consumer = Consumer(make_feed(mock, FakeClock()))
    mock.wait_for_ws(1)
    mock.advance(60)
    first = consumer.take(2)

    # Reconnect; the 00:01 kline closes right after the new socket subscribed and before the
    # REST fill asks for the server time: it arrives both over REST and over the socket.
    mock.advance_on_next("/api/v3/time", 60)
    mock.drop_ws()
    mock.wait_for_ws(2)
    overlap = consumer.take(2)
    mock.advance(60)
    live = consumer.take(2)
    consumer.finish()

    tz = first[0].time.tzinfo
    expected = [datetime(2025, 10, 1, 0, m, tzinfo=tz) for m in range(3)]
    assert by_symbol(first + overlap + live) == {"BTCUSDT": expected, "ETHUSDT": expected}
    assert consumer.bars.empty()
    assert consumer.error is None


def test_stream_start_fills_history_before_live_bars(mock: MockBinance) -> None:
    start = mock.now() - 5 * MINUTE
    consumer = Consumer(make_feed(mock, FakeClock(), start=start, symbols=["BTCUSDT"]))
    backfill = consumer.take(5)
    mock.wait_for_ws(1)
    mock.advance(60)
    live = consumer.take(1)
    consumer.finish()

    assert [b.time for b in backfill + live] == [start + i * MINUTE for i in range(6)]


def test_stream_reconnect_gives_up_after_policy_attempts(mock: MockBinance) -> None:
    clock = FakeClock()
    feed = make_feed(mock, clock, reconnect=RetryPolicy(max_attempts=3, base_delay_s=1.0))
    mock.fail_next("/stream", status=503, count=10)

    with pytest.raises(ProviderUnavailable, match="websocket"):
        next(iter(feed.stream(threading.Event())))

    assert [r.status for r in mock.requests("/stream")] == [503, 503, 503]
    assert clock.monotonic() == 1.0 + 2.0
    feed.close()


def test_stream_stop_ends_the_iterator_promptly(mock: MockBinance) -> None:
    consumer = Consumer(make_feed(mock, FakeClock()))
    mock.wait_for_ws(1)

    consumer.stop.set()
    consumer.thread.join(5)

    assert not consumer.thread.is_alive()
    assert consumer.error is None
    assert consumer.feed.status is ProviderStatus.DISCONNECTED
    consumer.feed.close()


def test_stream_ends_at_end_for_every_symbol(mock: MockBinance) -> None:
    start = mock.now() - 5 * MINUTE
    feed = make_feed(mock, FakeClock(), start=start, end=start + 3 * MINUTE)

    bars = list(feed.stream(threading.Event()))  # ends by itself, no stop needed
    feed.close()

    expected = [start + i * MINUTE for i in range(3)]
    assert by_symbol(bars) == {"BTCUSDT": expected, "ETHUSDT": expected}


def test_stream_ends_after_bars_per_symbol(mock: MockBinance) -> None:
    start = mock.now() - 5 * MINUTE
    feed = make_feed(mock, FakeClock(), start=start, bars=2)

    bars = list(feed.stream(threading.Event()))
    feed.close()

    expected = [start, start + MINUTE]
    assert by_symbol(bars) == {"BTCUSDT": expected, "ETHUSDT": expected}
