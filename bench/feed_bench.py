"""Feed benchmark: normalised messages/s through parsing → quote cache → engine `Quote` command.

    .venv/bin/python bench/feed_bench.py [--quick] [--json] [--messages N]

Workloads, each for a Binance-format depth stream (`depthUpdate`, 5 bid + 5 ask levels, combined
stream envelope) and a Kalshi-format delta stream (`orderbook_delta`, dollars); parse and feed also
for a Binance mix of every type the feed handles (depthUpdate, trade, aggTrade, bookTicker, kline,
24hrTicker in turn), a Polymarket mix (price_change in its current shape and both pre-2025-09 shapes,
best_bid_ask, tick_size_change), a Kalshi mix (orderbook_delta, trade, ticker_v2), an OKX mix (`books`
update chained by prevSeqId, `trades`, `tickers`) and a Bybit mix (`orderbook.50` delta chained by
`u`, `publicTrade`, `tickers`) and a Coinbase mix (`l2_data` update, `market_trades`, `ticker`, one
`sequence_num` chain):
- parse: raw bytes → normalised update (no book), messages/s (for the Polymarket, Kalshi, OKX and
  Bybit mixes also per CPU second of the process, `cpu_ops_per_s`, which a busy shared machine
  distorts less); for Binance the feed's typed msgspec fast path, and (`parse_generic`) the general
  orjson + dict path it falls back to;
- feed: the feed's `handle_message` (parse, local book, top-of-book `Quote`), messages/s;
- pipeline: feed → router (quote cache, `commands.Quote`) → the real `Engine.apply`, commands/s;
- latency: a paced 5,000 messages/s over a loopback WebSocket from a server in a child process →
  feed → router → `Engine.apply`; p50/p99/p99.9 from the server's send to the engine's return
  (both stamped with the system-wide monotonic clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import platform
import random
import socket
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import orjson
import structlog

from tradehall.domain import commands
from tradehall.domain.enums import MarketKind
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.marketdata import binance, binance_streams, bybit, coinbase, kalshi, okx, polymarket
from tradehall.marketdata.binance import BinanceFeed, DepthSnapshot
from tradehall.marketdata.bybit import BybitFeed
from tradehall.marketdata.coinbase import CoinbaseFeed
from tradehall.marketdata.kalshi import KalshiFeed
from tradehall.marketdata.models import BookSnapshot
from tradehall.marketdata.okx import OkxFeed
from tradehall.marketdata.parsing import loads
from tradehall.marketdata.polymarket import PolymarketFeed, PolymarketMarketRef
from tradehall.marketdata.router import InstrumentRef, MarketRoute, Router

BENCH = "feed"
GC_MODE = {"freeze": False}
results: list[dict[str, Any]] = []


def emit(workload: str, metric: str, value: float, unit: str) -> None:
    results.append(
        {"bench": BENCH, "workload": workload, "metric": metric, "value": round(value, 2), "unit": unit}
    )


# --- message generators ---------------------------------------------------------------------------


def binance_messages(count: int, seed: int = 1) -> list[bytes]:
    """Diffs around 67,000.00 with contiguous ids starting at 1001 (snapshot id 1000)."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        bids = [
            [f"{67000 - rng.randint(0, 200) / 100:.2f}", f"{rng.randint(0, 50) / 10:.8f}"] for _ in range(5)
        ]
        asks = [
            [f"{67000.01 + rng.randint(0, 200) / 100:.2f}", f"{rng.randint(0, 50) / 10:.8f}"]
            for _ in range(5)
        ]
        update_id = 1001 + index
        out.append(
            orjson.dumps(
                {
                    "stream": "btcusdt@depth@100ms",
                    "data": {
                        "e": "depthUpdate",
                        "E": 1672515782136,
                        "s": "BTCUSDT",
                        "U": update_id,
                        "u": update_id,
                        "b": bids,
                        "a": asks,
                    },
                }
            )
        )
    return out


def binance_mix_messages(count: int, seed: int = 3) -> list[bytes]:
    """Every Binance message type the feed handles, in turn: depthUpdate (contiguous ids from 1001),
    trade, aggTrade, bookTicker, kline and 24hrTicker, as the combined stream wraps them."""
    rng = random.Random(seed)
    depth = binance_messages(count // 6 + 1, seed)
    out: list[bytes] = []
    for index in range(count):
        kind = index % 6
        price = f"{67000 + rng.randint(-200, 200) / 100:.2f}"
        size = f"{rng.randint(1, 50000) / 10000:.8f}"
        if kind == 0:
            out.append(depth[index // 6])
            continue
        if kind == 1:
            stream, data = (
                "trade",
                {
                    "e": "trade",
                    "E": 1672515782136,
                    "s": "BTCUSDT",
                    "t": index,
                    "p": price,
                    "q": size,
                    "T": 1672515782136,
                    "m": index % 2 == 0,
                    "M": True,
                },
            )
        elif kind == 2:
            stream, data = (
                "aggTrade",
                {
                    "e": "aggTrade",
                    "E": 1672515782136,
                    "s": "BTCUSDT",
                    "a": index,
                    "p": price,
                    "q": size,
                    "f": index,
                    "l": index + 2,
                    "T": 1672515782136,
                    "m": index % 2 == 1,
                    "M": True,
                },
            )
        elif kind == 3:
            stream, data = (
                "bookTicker",
                {
                    "u": index,
                    "s": "BTCUSDT",
                    "b": price,
                    "B": size,
                    "a": f"{float(price) + 0.01:.2f}",
                    "A": size,
                },
            )
        elif kind == 4:
            stream, data = (
                "kline_1m",
                {
                    "e": "kline",
                    "E": 1672515782136,
                    "s": "BTCUSDT",
                    "k": {
                        "t": 1672515780000,
                        "T": 1672515839999,
                        "s": "BTCUSDT",
                        "i": "1m",
                        "f": 1,
                        "L": index,
                        "o": "67000.00",
                        "c": price,
                        "h": "67002.00",
                        "l": "66998.00",
                        "v": size,
                        "n": index,
                        "x": False,
                        "q": "1.0",
                        "V": "0.5",
                        "Q": "0.5",
                        "B": "0",
                    },
                },
            )
        else:
            stream, data = (
                "ticker",
                {
                    "e": "24hrTicker",
                    "E": 1672515782136,
                    "s": "BTCUSDT",
                    "p": "12.5",
                    "P": "0.02",
                    "w": "66990.1",
                    "x": "66987.5",
                    "c": price,
                    "Q": size,
                    "b": price,
                    "B": size,
                    "a": f"{float(price) + 0.01:.2f}",
                    "A": size,
                    "o": "66987.5",
                    "h": "67100.0",
                    "l": "66800.0",
                    "v": "12345.678",
                    "q": "827000000.1",
                    "O": 0,
                    "C": 86400000,
                    "F": 0,
                    "L": index,
                    "n": index,
                },
            )
        out.append(orjson.dumps({"stream": f"btcusdt@{stream}", "data": data}))
    return out


def parse_binance(raw: bytes) -> object:
    """What the feed does to a message before any state: the typed depth path or the type's parser."""
    if b'"depthUpdate"' in raw:
        return binance.decode_depth(raw)
    body = binance.unwrap(loads(raw))
    kind = body.get("e")
    if kind == "trade":
        return binance.parse_trade(body, 0)
    if kind == "aggTrade":
        return binance_streams.parse_agg_trade(body, 0)
    if kind == "kline":
        return binance_streams.parse_kline(body, 0)
    if kind == "24hrTicker":
        return binance_streams.parse_ticker_24h(body, 0)
    return binance.parse_book_ticker(body, 0)


def binance_snapshot() -> DepthSnapshot:
    bids = tuple((Decimal(f"{67000 - i / 100:.2f}"), Decimal("1")) for i in range(201))
    asks = tuple((Decimal(f"{67000.01 + i / 100:.2f}"), Decimal("1")) for i in range(201))
    return DepthSnapshot(1000, bids, asks)


def kalshi_messages(count: int, seed: int = 2) -> list[bytes]:
    """Deltas with seq 2.. on sid 1; YES bids 0.01-0.45, NO bids 0.01-0.50, never emptying a side."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        side = "yes" if rng.random() < 0.5 else "no"
        top = 45 if side == "yes" else 50
        price = f"0.{rng.randint(1, top):02d}00"
        change = f"{rng.choice((-1, 1)) * rng.randint(1, 5)}.00"
        out.append(
            orjson.dumps(
                {
                    "type": "orderbook_delta",
                    "sid": 1,
                    "seq": 2 + index,
                    "msg": {
                        "market_ticker": "FED-23DEC-T3.00",
                        "price_dollars": price,
                        "delta_fp": change,
                        "side": side,
                        "ts": "2022-11-22T20:44:01Z",
                        "ts_ms": 1669149841000,
                    },
                }
            )
        )
    return out


def kalshi_snapshot() -> bytes:
    yes = [[f"0.{i:02d}00", "1000.00"] for i in range(1, 46)]
    no = [[f"0.{i:02d}00", "1000.00"] for i in range(1, 51)]
    return orjson.dumps(
        {
            "type": "orderbook_snapshot",
            "sid": 1,
            "seq": 1,
            "msg": {
                "market_ticker": "FED-23DEC-T3.00",
                "market_id": "9b0f",
                "yes_dollars_fp": yes,
                "no_dollars_fp": no,
            },
        }
    )


POLY_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
POLY_MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def polymarket_mix_messages(count: int, seed: int = 4) -> list[bytes]:
    """price_change (current, legacy `changes[]`, legacy flat), best_bid_ask, tick_size_change in turn.

    Changes touch levels behind the top (bids 0.02-0.39, asks 0.61-0.98, never size 0), so the best
    bid/ask every message states (0.40 / 0.60, the snapshot's) always agrees with the local book."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        side = "BUY" if rng.random() < 0.5 else "SELL"
        price = f"0.{rng.randint(2, 39) if side == 'BUY' else rng.randint(61, 98):02d}"
        size = f"{rng.randint(1, 5000)}.{rng.randint(0, 99):02d}"
        stamp = str(1757908892351 + index)
        kind = index % 5
        body: dict[str, Any]
        if kind == 0:
            body = {
                "market": POLY_MARKET,
                "price_changes": [
                    {
                        "asset_id": POLY_TOKEN,
                        "price": price,
                        "size": size,
                        "side": side,
                        "hash": "56621a121a47ed9333273e21c83b660cff37ae50",
                        "best_bid": "0.4",
                        "best_ask": "0.6",
                    }
                ],
                "timestamp": stamp,
                "event_type": "price_change",
            }
        elif kind == 1:
            body = {
                "asset_id": POLY_TOKEN,
                "changes": [{"price": price, "side": side, "size": size}],
                "event_type": "price_change",
                "hash": "a0b7cadf869fc288dbbf65704996fe818cc97d6a",
                "market": POLY_MARKET,
                "timestamp": stamp,
            }
        elif kind == 2:
            body = {
                "asset_id": POLY_TOKEN,
                "event_type": "price_change",
                "hash": "bf32b3746fff40c76c98021b7f3f07261169dd26",
                "market": POLY_MARKET,
                "price": price,
                "side": side,
                "size": size,
                "timestamp": stamp,
            }
        elif kind == 3:
            body = {
                "event_type": "best_bid_ask",
                "market": POLY_MARKET,
                "asset_id": POLY_TOKEN,
                "best_bid": "0.40",
                "best_ask": "0.60",
                "spread": "0.20",
                "timestamp": stamp,
            }
        else:
            body = {
                "event_type": "tick_size_change",
                "asset_id": POLY_TOKEN,
                "market": POLY_MARKET,
                "old_tick_size": "0.01",
                "new_tick_size": "0.01",
                "timestamp": stamp,
            }
        out.append(orjson.dumps(body))
    return out


def parse_polymarket(raw: bytes) -> object:
    """The mix's parse step without a book: what the feed decodes before touching state."""
    body = loads(raw)
    kind = body["event_type"]
    if kind == "price_change":
        return polymarket.parse_price_change(body)
    if kind == "best_bid_ask":
        return (Decimal(body["best_bid"]), Decimal(body["best_ask"]))
    return Decimal(body["new_tick_size"])


def kalshi_mix_messages(count: int, seed: int = 5) -> list[bytes]:
    """orderbook_delta, trade, ticker_v2 in turn (deltas numbered on sid 1 as in `kalshi_messages`)."""
    deltas = kalshi_messages((count + 2) // 3, seed)
    rng = random.Random(seed)
    out = []
    for index in range(count):
        kind = index % 3
        if kind == 0:
            out.append(deltas[index // 3])
        elif kind == 1:
            yes = rng.randint(1, 99)
            out.append(
                orjson.dumps(
                    {
                        "type": "trade",
                        "sid": 2,
                        "seq": 1 + index // 3,
                        "msg": {
                            "trade_id": "d91bc706-ee49-470d-82d8-11418bda6fed",
                            "market_ticker": "FED-23DEC-T3.00",
                            "yes_price_dollars": f"0.{yes:02d}00",
                            "no_price_dollars": f"0.{100 - yes:02d}00",
                            "count_fp": f"{rng.randint(1, 500)}.00",
                            "taker_side": rng.choice(("yes", "no")),
                            "ts": 1741052641 + index,
                        },
                    }
                )
            )
        else:
            price = rng.randint(1, 99)
            out.append(
                orjson.dumps(
                    {
                        "type": "ticker_v2",
                        "sid": 11,
                        "msg": {
                            "market_ticker": "FED-23DEC-T3.00",
                            "market_id": "9b0f6b43-5b68-4f9f-9f02-9a2d1b8ac1a1",
                            "price": price,
                            "price_dollars": f"0.{price:02d}0",
                            "volume_delta": 100,
                            "volume_delta_fp": "100.00",
                            "ts": 1669149841 + index,
                        },
                    }
                )
            )
    return out


def parse_kalshi(raw: bytes) -> object:
    body = loads(raw)
    kind = body["type"]
    if kind == "orderbook_delta":
        return kalshi.parse_delta(body["msg"])
    if kind == "trade":
        return kalshi.parse_trade(body["msg"], 0)
    return kalshi.price_of(body["msg"], "price")


# --- OKX and Bybit ------------------------------------------------------------------------------------

OKX_SNAPSHOT_SEQ = 1000
BYBIT_SNAPSHOT_U = 1000


def _okx_levels(rng: random.Random, base: float, sign: int, count: int) -> list[list[str]]:
    return [
        [
            f"{base + sign * rng.randint(0, 200) / 10:.1f}",
            f"{rng.randint(0, 50) / 10:.8f}",
            "0",
            str(rng.randint(1, 9)),
        ]
        for _ in range(count)
    ]


def okx_mix_messages(count: int, seed: int = 6) -> list[bytes]:
    """`books` update (2 + 2 levels, prevSeqId chained from the snapshot's seqId), `trades`,
    `tickers` in turn, as OKX sends them (docs/marketdata.md)."""
    rng = random.Random(seed)
    seq = OKX_SNAPSHOT_SEQ
    out = []
    for index in range(count):
        kind = index % 3
        ts = str(1_700_000_000_000 + index)
        if kind == 0:
            prev, seq = seq, seq + rng.randint(1, 20)
            data = {
                "asks": _okx_levels(rng, 67000.1, 1, 2),
                "bids": _okx_levels(rng, 67000.0, -1, 2),
                "ts": ts,
                "checksum": 0,
                "prevSeqId": prev,
                "seqId": seq,
            }
            out.append(
                orjson.dumps(
                    {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update", "data": [data]}
                )
            )
        elif kind == 1:
            item = {
                "instId": "BTC-USDT",
                "tradeId": str(130639474 + index),
                "px": f"{67000 + rng.randint(-50, 50) / 10:.1f}",
                "sz": f"{rng.randint(1, 5000) / 10000:.8f}",
                "side": rng.choice(("buy", "sell")),
                "ts": ts,
                "count": "1",
            }
            out.append(orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [item]}))
        else:
            last = f"{67000 + rng.randint(-50, 50) / 10:.1f}"
            item = {
                "instType": "SPOT",
                "instId": "BTC-USDT",
                "last": last,
                "lastSz": "0.1",
                "askPx": "67000.1",
                "askSz": "11",
                "bidPx": "67000",
                "bidSz": "5",
                "open24h": "66000",
                "high24h": "67500",
                "low24h": "65800",
                "volCcy24h": "2222",
                "vol24h": "2222",
                "sodUtc0": "66100",
                "sodUtc8": "66200",
                "ts": ts,
            }
            out.append(orjson.dumps({"arg": {"channel": "tickers", "instId": "BTC-USDT"}, "data": [item]}))
    return out


def parse_okx(raw: bytes) -> object:
    body = loads(raw)
    channel = body["arg"]["channel"]
    item = body["data"][0]
    if channel == "books":
        return (
            okx.parse_levels(item["bids"], "bids"),
            okx.parse_levels(item["asks"], "asks"),
            int(item["prevSeqId"]),
        )
    if channel == "trades":
        return okx.parse_trade(item, 0)
    return okx.parse_ticker(item, 0)


def bybit_mix_messages(count: int, seed: int = 7) -> list[bytes]:
    """`orderbook.50` delta (2 + 2 levels, `u` chained from the snapshot's), `publicTrade`,
    `tickers` (a linear delta naming only what changed) in turn."""
    rng = random.Random(seed)
    update_id = BYBIT_SNAPSHOT_U
    out = []
    for index in range(count):
        kind = index % 3
        ts = 1_700_000_000_000 + index
        if kind == 0:
            update_id += 1
            data = {
                "s": "BTCUSDT",
                "b": [
                    [f"{67000 - rng.randint(0, 200) / 10:.2f}", f"{rng.randint(0, 50) / 10:.3f}"]
                    for _ in range(2)
                ],
                "a": [
                    [f"{67000.1 + rng.randint(0, 200) / 10:.2f}", f"{rng.randint(0, 50) / 10:.3f}"]
                    for _ in range(2)
                ],
                "u": update_id,
                "seq": update_id * 7,
            }
            out.append(
                orjson.dumps(
                    {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": ts, "data": data, "cts": ts - 2}
                )
            )
        elif kind == 1:
            item = {
                "T": ts - 1,
                "s": "BTCUSDT",
                "S": rng.choice(("Buy", "Sell")),
                "v": f"{rng.randint(1, 5000) / 1000:.3f}",
                "p": f"{67000 + rng.randint(-50, 50) / 10:.2f}",
                "L": "PlusTick",
                "i": f"20f43950-d8dd-5b31-9112-{index:012d}",
                "BT": False,
                "seq": 1783284617 + index,
            }
            out.append(
                orjson.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": ts, "data": [item]})
            )
        else:
            data = {
                "symbol": "BTCUSDT",
                "lastPrice": f"{67000 + rng.randint(-50, 50) / 10:.2f}",
                "volume24h": "91705.276",
            }
            out.append(
                orjson.dumps(
                    {
                        "topic": "tickers.BTCUSDT",
                        "type": "delta",
                        "data": data,
                        "cs": 24987956059 + index,
                        "ts": ts,
                    }
                )
            )
    return out


def parse_bybit(raw: bytes) -> object:
    body = loads(raw)
    kind = body["topic"].partition(".")[0]
    data = body["data"]
    if kind == "orderbook":
        return bybit.parse_levels(data["b"], "b"), bybit.parse_levels(data["a"], "a"), int(data["u"])
    if kind == "publicTrade":
        return bybit.parse_trade(data[0], 0)
    return bybit.merge_ticker(None, data, None, 0)


def coinbase_mix_messages(count: int, seed: int = 8) -> list[bytes]:
    """`l2_data` update (2 + 2 levels), `market_trades`, `ticker` in turn, `sequence_num` counting
    every message from 1 (the snapshot was 0)."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        kind = index % 3
        stamp = f"2026-04-07T14:30:{index % 60:02d}.{index % 1_000_000:06d}789Z"
        if kind == 0:
            updates = [
                {
                    "side": side,
                    "event_time": stamp,
                    "price_level": f"{base + sign * rng.randint(0, 200) / 100:.2f}",
                    "new_quantity": f"{rng.randint(0, 50) / 10:.8f}",
                }
                for side, base, sign in (
                    ("bid", 67000.0, -1),
                    ("bid", 67000.0, -1),
                    ("offer", 67000.01, 1),
                    ("offer", 67000.01, 1),
                )
            ]
            channel, events = "l2_data", [{"type": "update", "product_id": "BTC-USD", "updates": updates}]
        elif kind == 1:
            trade = {
                "trade_id": str(995098700 + index),
                "product_id": "BTC-USD",
                "price": f"{67000 + rng.randint(-50, 50) / 100:.2f}",
                "size": f"{rng.randint(1, 5000) / 10000:.8f}",
                "side": rng.choice(("BUY", "SELL")),
                "time": stamp,
            }
            channel, events = "market_trades", [{"type": "update", "trades": [trade]}]
        else:
            ticker = {
                "type": "ticker",
                "product_id": "BTC-USD",
                "price": f"{67000 + rng.randint(-50, 50) / 100:.2f}",
                "volume_24_h": "15328.12345678",
                "low_24_h": "67500.00",
                "high_24_h": "69200.00",
                "low_52_w": "25000.00",
                "high_52_w": "73800.00",
                "price_percent_chg_24_h": "1.85",
                "best_bid": "67000.00",
                "best_bid_quantity": "1.5",
                "best_ask": "67000.01",
                "best_ask_quantity": "0.5",
            }
            channel, events = "ticker", [{"type": "update", "tickers": [ticker]}]
        message = {
            "channel": channel,
            "client_id": "",
            "timestamp": stamp,
            "sequence_num": index + 1,
            "events": events,
        }
        out.append(orjson.dumps(message))
    return out


def parse_coinbase(raw: bytes) -> object:
    body = loads(raw)
    event = body["events"][0]
    channel = body["channel"]
    if channel == "l2_data":
        return coinbase.parse_updates(event["updates"]), coinbase.iso_ns(body["timestamp"])
    if channel == "market_trades":
        return coinbase.parse_trade(event["trades"][0], 0)
    return coinbase.parse_ticker(event["tickers"][0], coinbase.iso_ns(body["timestamp"]), 0)


def make_coinbase(sink: Callable[[Any], None]) -> CoinbaseFeed:
    """A feed whose BTC-USD book holds a snapshot, its connection at sequence_num 0."""
    feed = CoinbaseFeed(
        ["BTC-USD"], sink, httpx.AsyncClient(), ws_url="ws://127.0.0.1:1", rest_root="http://127.0.0.1:1"
    )
    bids = [(Decimal(f"{67000 - i / 100:.2f}"), Decimal(1)) for i in range(400)]
    asks = [(Decimal(f"{67000.01 + i / 100:.2f}"), Decimal(1)) for i in range(400)]
    feed.books["BTC-USD"].load(bids, asks, 0, None)
    feed.last_sequence = 0
    return feed


def make_okx(sink: Callable[[Any], None]) -> OkxFeed:
    """A feed whose BTC-USDT book holds a snapshot at seqId 1000."""
    feed = OkxFeed(
        ["BTC-USDT"],
        sink,
        httpx.AsyncClient(),
        channels=("books", "trades", "tickers"),
        ws_url="ws://127.0.0.1:1",
        rest_root="http://127.0.0.1:1",
    )
    bids = [(Decimal(f"{67000 - i / 10:.1f}"), Decimal(1)) for i in range(400)]
    asks = [(Decimal(f"{67000.1 + i / 10:.1f}"), Decimal(1)) for i in range(400)]
    feed.books["BTC-USDT"].load(bids, asks, OKX_SNAPSHOT_SEQ, None)
    return feed


def make_bybit(sink: Callable[[Any], None]) -> BybitFeed:
    """A feed (linear) whose BTCUSDT book holds a snapshot at u 1000."""
    feed = BybitFeed(
        ["BTCUSDT"],
        sink,
        httpx.AsyncClient(),
        category="linear",
        ws_root="ws://127.0.0.1:1",
        rest_root="http://127.0.0.1:1",
    )
    bids = [(Decimal(f"{67000 - i / 10:.2f}"), Decimal(1)) for i in range(50)]
    asks = [(Decimal(f"{67000.1 + i / 10:.2f}"), Decimal(1)) for i in range(50)]
    feed.books["BTCUSDT"].load(bids, asks, BYBIT_SNAPSHOT_U, None)
    return feed


# --- set-ups ------------------------------------------------------------------------------------------


def engine_with_markets() -> Engine:
    engine = Engine()
    engine.apply(
        commands.CreateMarket(
            spec=MarketSpec(
                symbol="BTC-USDT",
                kind=MarketKind.SPOT,
                base="BTC",
                quote="USDT",
                tick_size=Decimal("0.01"),
                lot_size=Decimal("0.00001"),
            )
        )
    )
    engine.apply(
        commands.CreateMarket(
            spec=MarketSpec(
                symbol="FED-YES",
                kind=MarketKind.BINARY,
                base="FED-YES",
                quote="USD",
                tick_size=Decimal("0.01"),
                lot_size=Decimal("1"),
            )
        )
    )
    return engine


def make_binance(
    sink: Callable[[Any], None],
    http: httpx.AsyncClient | None = None,
    ws_root: str = "ws://127.0.0.1:1",
    streams: tuple[str, ...] = ("depth@100ms",),
) -> BinanceFeed:
    feed = BinanceFeed(
        ["btcusdt"],
        sink,
        http or httpx.AsyncClient(),
        ws_root=ws_root,
        rest_root="http://127.0.0.1:1",
        streams=streams,
    )
    book = feed.books["btcusdt"]
    book.snapshot_requested = True
    book.on_snapshot(binance_snapshot())
    return feed


def make_kalshi(sink: Callable[[Any], None], ws_url: str = "ws://127.0.0.1:1") -> KalshiFeed:
    feed = KalshiFeed(
        ["FED-23DEC-T3.00"], sink, httpx.AsyncClient(), ws_url=ws_url, rest_root="http://127.0.0.1:1"
    )
    feed.handle_message(kalshi_snapshot())
    return feed


def make_polymarket(sink: Callable[[Any], None]) -> PolymarketFeed:
    """A feed whose one token holds a snapshot: bids 0.01-0.40, asks 0.60-0.99, 100 each."""
    feed = PolymarketFeed(
        [PolymarketMarketRef("bench-market", POLY_TOKEN)],
        sink,
        httpx.AsyncClient(),
        clob_root="http://127.0.0.1:1",
    )
    feed.books[POLY_TOKEN].load(
        BookSnapshot(
            source="polymarket",
            instrument=POLY_TOKEN,
            bids=tuple((Decimal(f"0.{i:02d}"), Decimal(100)) for i in range(40, 0, -1)),
            asks=tuple((Decimal(f"0.{i:02d}"), Decimal(100)) for i in range(60, 100)),
            exchange_ts=None,
            receive_ts=0,
        )
    )
    return feed


def router_into(engine: Engine, counter: list[int]) -> Router:
    def submit(command: commands.AnyCommand) -> None:
        engine.apply(command)
        counter[0] += 1

    return Router(
        [
            MarketRoute("BTC-USDT", (InstrumentRef("binance", "btcusdt"),)),
            MarketRoute("FED-YES", (InstrumentRef("kalshi", "FED-23DEC-T3.00"),)),
        ],
        submit,
    )


# --- throughput ----------------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_parse(messages: dict[str, list[bytes]]) -> None:
    started = time.perf_counter()
    for raw in messages["binance_depth"]:
        binance.decode_depth(raw)
    emit(
        "binance_depth:parse",
        "ops_per_s",
        rate(len(messages["binance_depth"]), time.perf_counter() - started),
        "msg/s",
    )
    started = time.perf_counter()
    for raw in messages["binance_depth"]:
        binance.parse_depth_update(binance.unwrap(loads(raw)))
    emit(
        "binance_depth:parse_generic",
        "ops_per_s",
        rate(len(messages["binance_depth"]), time.perf_counter() - started),
        "msg/s",
    )
    started = time.perf_counter()
    for raw in messages["binance_mix"]:
        parse_binance(raw)
    emit(
        "binance_mix:parse",
        "ops_per_s",
        rate(len(messages["binance_mix"]), time.perf_counter() - started),
        "msg/s",
    )
    for name, parse in (
        ("polymarket_mix", parse_polymarket),
        ("kalshi_mix", parse_kalshi),
        ("okx_mix", parse_okx),
        ("bybit_mix", parse_bybit),
        ("coinbase_mix", parse_coinbase),
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        for raw in messages[name]:
            parse(raw)
        emit(f"{name}:parse", "ops_per_s", rate(len(messages[name]), time.perf_counter() - started), "msg/s")
        # per CPU second of this process: comparable between runs on a machine other jobs share
        cpu_rate = rate(len(messages[name]), time.process_time() - cpu_started)
        emit(f"{name}:parse", "cpu_ops_per_s", cpu_rate, "msg/s")
    started = time.perf_counter()
    for raw in messages["kalshi_delta"]:
        kalshi.parse_delta(loads(raw)["msg"])
    emit(
        "kalshi_delta:parse",
        "ops_per_s",
        rate(len(messages["kalshi_delta"]), time.perf_counter() - started),
        "msg/s",
    )


def bench_feed(messages: dict[str, list[bytes]]) -> None:
    quotes = [0]

    def count(_: Any) -> None:
        quotes[0] += 1

    feed = make_binance(count)
    started = time.perf_counter()
    for raw in messages["binance_depth"]:
        feed.handle_message(raw)
    elapsed = time.perf_counter() - started
    assert feed.errors == 0 and quotes[0] == len(messages["binance_depth"]), (feed.errors_by_kind, quotes)
    emit("binance_depth:parse+book+quote", "ops_per_s", rate(quotes[0], elapsed), "msg/s")
    mixed = make_binance(
        count, streams=("depth@100ms", "trade", "aggTrade", "bookTicker", "kline_1m", "ticker")
    )
    quotes[0] = 0
    started = time.perf_counter()
    for raw in messages["binance_mix"]:
        mixed.handle_message(raw)
    elapsed = time.perf_counter() - started
    # every message is data except the 24 h tickers, which bookTicker makes redundant (counted as ignored)
    assert mixed.errors == 0 and mixed.messages + mixed.ignored_by_type["24hrTicker"] == len(
        messages["binance_mix"]
    ), (mixed.errors_by_kind, mixed.messages)
    emit("binance_mix:handle_message", "ops_per_s", rate(len(messages["binance_mix"]), elapsed), "msg/s")
    quotes[0] = 0
    kfeed = make_kalshi(count)
    quotes[0] = 0
    started = time.perf_counter()
    for raw in messages["kalshi_delta"]:
        kfeed.handle_message(raw)
    elapsed = time.perf_counter() - started
    assert kfeed.errors == 0 and quotes[0] == len(messages["kalshi_delta"]), (kfeed.errors_by_kind, quotes)
    emit("kalshi_delta:parse+book+quote", "ops_per_s", rate(quotes[0], elapsed), "msg/s")
    pfeed = make_polymarket(count)
    started = time.perf_counter()
    for raw in messages["polymarket_mix"]:
        assert not pfeed.handle_message(raw)  # the stated best bid/ask always agrees: no resync
    elapsed = time.perf_counter() - started
    assert pfeed.errors == 0, pfeed.errors_by_kind
    emit(
        "polymarket_mix:handle_message", "ops_per_s", rate(len(messages["polymarket_mix"]), elapsed), "msg/s"
    )
    kmix = make_kalshi(count)
    started = time.perf_counter()
    for raw in messages["kalshi_mix"]:
        kmix.handle_message(raw)
    elapsed = time.perf_counter() - started
    assert kmix.errors == 0, kmix.errors_by_kind
    emit("kalshi_mix:handle_message", "ops_per_s", rate(len(messages["kalshi_mix"]), elapsed), "msg/s")
    venues: tuple[tuple[str, Callable[[Callable[[Any], None]], OkxFeed | BybitFeed | CoinbaseFeed]], ...] = (
        ("okx_mix", make_okx),
        ("bybit_mix", make_bybit),
        ("coinbase_mix", make_coinbase),
    )
    for name, make_venue in venues:
        venue = make_venue(count)
        started = time.perf_counter()
        for raw in messages[name]:
            assert not venue.handle_message(raw)  # every delta joins up: no resync
        elapsed = time.perf_counter() - started
        assert venue.errors == 0 and venue.messages == len(messages[name]), venue.errors_by_kind
        emit(f"{name}:handle_message", "ops_per_s", rate(len(messages[name]), elapsed), "msg/s")


def bench_pipeline(messages: dict[str, list[bytes]]) -> None:
    for name, make in (("binance_depth", make_binance), ("kalshi_delta", make_kalshi)):
        engine = engine_with_markets()
        applied = [0]
        router = router_into(engine, applied)
        feed = make(router)
        applied[0] = 0
        started = time.perf_counter()
        for raw in messages[name]:
            feed.handle_message(raw)
        elapsed = time.perf_counter() - started
        assert applied[0] == len(messages[name]), (name, applied, feed.errors_by_kind)
        emit(f"{name}:parse+cache+engine_quote", "ops_per_s", rate(applied[0], elapsed), "cmd/s")


# --- latency at a paced rate ---------------------------------------------------------------------------


def paced_server(name: str, messages: list[bytes], per_second: int, ports: Any, sent_out: Any) -> None:
    """Child process: a WebSocket server that sends `messages` at `per_second`, stamping each send
    with the system-wide monotonic clock (comparable across processes on Linux)."""
    from websockets.sync.server import ServerConnection as SyncConnection
    from websockets.sync.server import serve as sync_serve

    def handler(ws: SyncConnection) -> None:
        # asyncio sets TCP_NODELAY on its sockets; a plain socket would let Nagle hold small frames back
        ws.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if name == "kalshi_delta":
            ws.recv()  # the subscribe
            ws.send(kalshi_snapshot())
        time.sleep(0.3)
        sent: list[int] = []
        interval = 1.0 / per_second
        start = time.perf_counter()
        for index, raw in enumerate(messages):
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # clock_nanosleep: fine enough for 200 us spacing, and frees the core
            sent.append(time.perf_counter_ns())
            ws.send(raw)
        sent_out.put(sent)
        with contextlib.suppress(Exception):
            ws.recv(timeout=60)

    with sync_serve(handler, "127.0.0.1", 0) as server:
        ports.put(server.socket.getsockname()[1])
        server.serve_forever()


async def bench_latency(name: str, messages: list[bytes], per_second: int) -> None:
    done_ns: list[int] = []
    engine = engine_with_markets()

    def submit(command: commands.AnyCommand) -> None:
        engine.apply(command)
        done_ns.append(time.perf_counter_ns())

    router = Router(
        [
            MarketRoute("BTC-USDT", (InstrumentRef("binance", "btcusdt"),)),
            MarketRoute("FED-YES", (InstrumentRef("kalshi", "FED-23DEC-T3.00"),)),
        ],
        submit,
    )
    context = multiprocessing.get_context("spawn")
    ports, sent_out = context.Queue(), context.Queue()
    server = context.Process(
        target=paced_server, args=(name, messages, per_second, ports, sent_out), daemon=True
    )
    server.start()
    try:
        port = await asyncio.to_thread(ports.get, True, 30)
        async with httpx.AsyncClient() as http:
            if name == "binance_depth":
                feed: BinanceFeed | KalshiFeed = make_binance(router, http, ws_root=f"ws://127.0.0.1:{port}")
            else:
                feed = KalshiFeed(
                    ["FED-23DEC-T3.00"],
                    router,
                    http,
                    ws_url=f"ws://127.0.0.1:{port}",
                    rest_root="http://127.0.0.1:1",
                    status_interval=3600,
                )
            handle = feed.handle_message
            processing_ns: list[int] = []

            def timed(raw: bytes) -> Any:
                began = time.perf_counter_ns()
                result = handle(raw)
                processing_ns.append(time.perf_counter_ns() - began)
                return result

            feed.handle_message = timed  # type: ignore[method-assign]
            feed.start()
            gc.collect()
            if GC_MODE["freeze"]:
                gc.freeze()  # set-up objects (engine, books) leave the collector's generations
            sent_ns: list[int] = await asyncio.to_thread(sent_out.get, True, len(messages) / per_second + 30)
            deadline = time.perf_counter() + 10
            expected = len(messages) + (1 if name == "kalshi_delta" else 0)  # + the snapshot's quote
            while len(done_ns) < expected and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
            await feed.stop()
    finally:
        server.terminate()
        server.join(5)
    if name == "kalshi_delta":
        done_ns = done_ns[1:]
    count = min(len(sent_ns), len(done_ns))
    if count < len(messages):
        print(f"warning: {name}: only {count} of {len(messages)} messages reached the engine")
    latencies = sorted((done_ns[i] - sent_ns[i]) / 1000 for i in range(count))
    if not latencies:
        return
    emit_percentiles(f"{name}:latency@{per_second}/s", latencies)
    # the feed's own share: message in hand → engine returned (no transport, no sender scheduling)
    emit_percentiles(f"{name}:processing@{per_second}/s", sorted(ns / 1000 for ns in processing_ns))


def emit_percentiles(workload: str, latencies: list[float]) -> None:
    emit(workload, "p50_us", statistics.median(latencies), "us")
    emit(workload, "p99_us", latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "us")
    emit(workload, "p999_us", latencies[min(len(latencies) - 1, int(len(latencies) * 0.999))], "us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run under 30 seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per figure")
    parser.add_argument("--messages", type=int, default=None, help="messages per throughput workload")
    parser.add_argument("--rate", type=int, default=5000, help="paced messages/s of the latency workloads")
    parser.add_argument(
        "--gc",
        choices=("default", "freeze"),
        default="default",
        help="freeze: gc.freeze() after set-up, before the latency runs",
    )
    args = parser.parse_args()
    GC_MODE["freeze"] = args.gc == "freeze"
    count = args.messages or (50_000 if args.quick else 300_000)
    paced = 10_000 if args.quick else 50_000
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    messages = {
        "binance_depth": binance_messages(count),
        "binance_mix": binance_mix_messages(count),
        "kalshi_delta": kalshi_messages(count),
        "polymarket_mix": polymarket_mix_messages(count),
        "kalshi_mix": kalshi_mix_messages(count),
        "okx_mix": okx_mix_messages(count),
        "bybit_mix": bybit_mix_messages(count),
        "coinbase_mix": coinbase_mix_messages(count),
    }
    # latency first, on a fresh heap: the throughput runs leave garbage that would tax it
    asyncio.run(bench_latency("binance_depth", messages["binance_depth"][:paced], args.rate))
    asyncio.run(bench_latency("kalshi_delta", messages["kalshi_delta"][:paced], args.rate))
    bench_parse(messages)
    bench_feed(messages)
    bench_pipeline(messages)

    if args.json:
        for row in results:
            print(json.dumps(row))
        return
    machine = f"nproc={os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}"
    print(f"feed benchmark: {count:,} messages per throughput workload, {paced:,} paced at {args.rate:,}/s")
    print(f"machine: {machine}")
    print(f"{'workload':44} {'metric':10} {'value':>14}")
    for row in results:
        print(f"{row['workload']:44} {row['metric']:10} {row['value']:>14,.2f} {row['unit']}")


if __name__ == "__main__":
    main()
