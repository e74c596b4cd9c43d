"""Binance spot stream names and the messages beside depth: `aggTrade`, `kline_<interval>`,
`ticker` (`24hrTicker`, and REST `ticker/24hr`), `serverShutdown`, error frames and acks.

Kept apart from `binance.py` (the connection and the depth book) so each stays readable. Every
parser takes the payload already unwrapped from the combined-stream envelope.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tradehall.marketdata.models import Candle, Quote, TradeTick
from tradehall.marketdata.parsing import ErrorKind, FeedError, dec, ns_from_ms

SOURCE = "binance"

KLINE_INTERVALS = frozenset(
    ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"]
)
PLAIN_STREAMS = frozenset(
    ["trade", "aggTrade", "bookTicker", "depth", "depth@100ms", "depth@1000ms", "ticker"]
)


def check_streams(streams: Iterable[str]) -> tuple[str, ...]:
    """The configured per-symbol stream names, refused at start when the feed cannot parse one
    (a typo would otherwise connect, receive nothing usable and look like a quiet market)."""
    names = tuple(streams)
    if not names:
        raise ValueError("binance_streams is empty: name at least one stream")
    for name in names:
        if name in PLAIN_STREAMS:
            continue
        if name.startswith("kline_") and name.removeprefix("kline_") in KLINE_INTERVALS:
            continue
        intervals = ", ".join(sorted(KLINE_INTERVALS))
        known = ", ".join(sorted(PLAIN_STREAMS)) + f", kline_<interval> ({intervals})"
        raise ValueError(f"unknown Binance stream {name!r}; known: {known}")
    return names


def parse_agg_trade(body: dict[str, Any], receive_ts: int) -> TradeTick:
    """`aggTrade`: trades of one taker order at one price. Its id space (`a`) is not the `trade`
    stream's (`t`), so the id is prefixed; `m` true means the buyer was the maker (the taker sold)."""
    return TradeTick(
        source=SOURCE,
        instrument=str(body["s"]).lower(),
        price=dec(body["p"], "p"),
        size=dec(body["q"], "q"),
        side="sell" if body.get("m") else "buy",
        trade_id=f"agg-{body['a']}",
        exchange_ts=ns_from_ms(body["T"]) if "T" in body else None,
        receive_ts=receive_ts,
    )


def parse_kline(body: dict[str, Any], receive_ts: int) -> Candle:
    """`kline`: the bar in `k` (`t`/`T` open and close ms, `o h l c v` strings, `x` closed)."""
    bar = body["k"]
    if not isinstance(bar, dict):
        raise FeedError(ErrorKind.PARSE, "kline without its k object")
    return Candle(
        source=SOURCE,
        instrument=str(bar.get("s") or body["s"]).lower(),
        interval=str(bar["i"]),
        open_ts=ns_from_ms(bar["t"]),
        close_ts=ns_from_ms(bar["T"]),
        open=dec(bar["o"], "o"),
        high=dec(bar["h"], "h"),
        low=dec(bar["l"], "l"),
        close=dec(bar["c"], "c"),
        volume=dec(bar["v"], "v"),
        closed=bool(bar["x"]),
        trades=int(bar["n"]) if "n" in bar else None,
        exchange_ts=ns_from_ms(body["E"]) if "E" in body else None,
        receive_ts=receive_ts,
    )


def parse_ticker_24h(body: dict[str, Any], receive_ts: int) -> Quote:
    """Stream `24hrTicker` (`c` last, `b`/`B` `a`/`A` top of book, `v` base volume, `E` time) or
    REST `ticker/24hr` (`lastPrice`, `bidPrice`, …, `volume`, `closeTime`). A side the payload
    lacks (futures tickers carry no book) stays None."""
    if "lastPrice" in body:
        symbol, last, volume = body["symbol"], body["lastPrice"], body.get("volume")
        bid, bid_size = body.get("bidPrice"), body.get("bidQty")
        ask, ask_size = body.get("askPrice"), body.get("askQty")
        stamp = body.get("closeTime")
    else:
        symbol, last, volume = body["s"], body["c"], body.get("v")
        bid, bid_size, ask, ask_size = body.get("b"), body.get("B"), body.get("a"), body.get("A")
        stamp = body.get("E")
    return Quote(
        source=SOURCE,
        instrument=str(symbol).lower(),
        bid=None if bid is None else dec(bid, "bid"),
        ask=None if ask is None else dec(ask, "ask"),
        bid_size=None if bid_size is None else dec(bid_size, "bid size"),
        ask_size=None if ask_size is None else dec(ask_size, "ask size"),
        last=dec(last, "last"),
        exchange_ts=None if stamp is None else ns_from_ms(stamp),
        receive_ts=receive_ts,
        volume_24h=None if volume is None else dec(volume, "volume"),
    )


def is_ack(body: dict[str, Any]) -> bool:
    """`{"result": null, "id": 1}` (SUBSCRIBE, UNSUBSCRIBE, SET_PROPERTY) or a query's answer
    (`LIST_SUBSCRIPTIONS`, `GET_PROPERTY`): control traffic, no data."""
    return "result" in body and "id" in body


def error_frame(body: dict[str, Any]) -> FeedError | None:
    """A WebSocket error answer: `{"code": 2, "msg": "Invalid request: …", "id": 1}` or the
    wrapped `{"error": {"code": …, "msg": …}, "id": …}`; None for any other message."""
    inner = body.get("error")
    if isinstance(inner, dict) and "code" in inner:
        return FeedError(ErrorKind.API_ERROR, f"stream error {inner.get('code')}: {inner.get('msg', '')}")
    if "code" in body and "msg" in body and "e" not in body:
        return FeedError(ErrorKind.API_ERROR, f"stream error {body['code']}: {body['msg']}")
    return None


def is_server_shutdown(body: dict[str, Any]) -> bool:
    """`{"e": "serverShutdown", "E": …}`, also inside the WebSocket API's `{"event": {…}}`."""
    if body.get("e") == "serverShutdown":
        return True
    event = body.get("event")
    return isinstance(event, dict) and event.get("e") == "serverShutdown"
