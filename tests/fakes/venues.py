"""Fake OKX v5 and Bybit v5 public WebSockets (with their REST order books) that speak the wire
formats of docs/marketdata.md: subscription acks, a snapshot on every book subscription, deltas
chained by sequence (a test can break the chain), trades, and the venues' own keepalives."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection

from tests.fakes.http_server import FakeHttpServer, Request, Response
from tests.fakes.ws import FakeWsServer

TS_MS = 1_700_000_000_000


def _best_first(side: dict[str, str], highest: bool) -> list[tuple[str, str]]:
    return sorted(side.items(), key=lambda item: float(item[0]), reverse=highest)


def okx_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX's recipe, written from its documentation apart from the feed's: CRC32 of
    `bid:size:ask:size:…` over the best 25 levels of each side (best first), as a signed int32."""
    parts: list[str] = []
    for index in range(25):
        if index < len(bids):
            parts += bids[index]
        if index < len(asks):
            parts += asks[index]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


class FakeVenueBook:
    """String prices and sizes, as the venues send them."""

    def __init__(self, bids: dict[str, str], asks: dict[str, str]) -> None:
        self.bids = dict(bids)
        self.asks = dict(asks)

    def set(self, side: str, price: str, size: str) -> None:
        book = self.bids if side == "bid" else self.asks
        if float(size) == 0:
            book.pop(price, None)
        else:
            book[price] = size

    def sorted_bids(self) -> list[tuple[str, str]]:
        return _best_first(self.bids, True)

    def sorted_asks(self) -> list[tuple[str, str]]:
        return _best_first(self.asks, False)


class FakeOkx:
    """`/ws/v5/public` (books, books5, tickers, trades; text ping → pong) and REST
    `/api/v5/market/books`."""

    def __init__(self, http: FakeHttpServer, ws: FakeWsServer, inst_id: str, book: FakeVenueBook) -> None:
        self.http = http
        self.ws = ws
        self.inst_id = inst_id
        self.book = book
        self.seq = 100
        self.subscribes: list[list[dict[str, str]]] = []
        self.unsubscribes: list[list[dict[str, str]]] = []
        ws.on_message = self._on_message
        http.route("/api/v5/market/books", self._rest_books)

    def checksum(self) -> int:
        return okx_checksum(self.book.sorted_bids(), self.book.sorted_asks())

    def _levels(self, rows: list[tuple[str, str]]) -> list[list[str]]:
        return [[price, size, "0", "1"] for price, size in rows]

    def _rest_books(self, request: Request) -> Response:
        if request.query.get("instId") != self.inst_id:
            return Response.json({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        data = {
            "asks": self._levels(self.book.sorted_asks()[:1]),
            "bids": self._levels(self.book.sorted_bids()[:1]),
            "ts": str(TS_MS),
        }
        return Response.json({"code": "0", "msg": "", "data": [data]})

    async def _on_message(self, server: FakeWsServer, ws: ServerConnection, message: Any) -> None:
        op, args = message.get("op"), message.get("args") or []
        if op == "unsubscribe":
            self.unsubscribes.append(args)
            for arg in args:
                await ws.send(
                    orjson.dumps({"event": "unsubscribe", "arg": arg, "connId": "fake0001"}).decode()
                )
            return
        if op != "subscribe":
            await ws.send(
                orjson.dumps({"event": "error", "code": "60012", "msg": "Invalid request"}).decode()
            )
            return
        self.subscribes.append(args)
        for arg in args:
            await ws.send(orjson.dumps({"event": "subscribe", "arg": arg, "connId": "fake0001"}).decode())
        for arg in args:
            if arg.get("channel") == "books":
                self.seq += 10  # a new subscription's sequence starts anywhere
                await ws.send(
                    orjson.dumps(
                        self._book_push(arg, "snapshot", -1, self.book.sorted_bids(), self.book.sorted_asks())
                    ).decode()
                )
            elif arg.get("channel") == "books5":
                await ws.send(orjson.dumps(self._books5()).decode())

    def _book_push(
        self,
        arg: dict[str, str],
        action: str,
        prev: int,
        bids: list[tuple[str, str]],
        asks: list[tuple[str, str]],
    ) -> dict[str, Any]:
        data = {
            "asks": self._levels(asks),
            "bids": self._levels(bids),
            "ts": str(TS_MS + self.seq),
            "checksum": self.checksum(),
            "prevSeqId": prev,
            "seqId": self.seq,
        }
        return {"arg": arg, "action": action, "data": [data]}

    def _books5(self) -> dict[str, Any]:
        arg = {"channel": "books5", "instId": self.inst_id}
        data = {
            "asks": self._levels(self.book.sorted_asks()[:5]),
            "bids": self._levels(self.book.sorted_bids()[:5]),
            "instId": self.inst_id,
            "ts": str(TS_MS),
            "seqId": self.seq,
        }
        return {"arg": arg, "data": [data]}

    async def update(self, side: str, price: str, size: str, *, gap: bool = False) -> None:
        """One `books` update; `gap` skips a message (its prevSeqId is not the last seqId sent)."""
        self.book.set(side, price, size)
        prev = self.seq + (5 if gap else 0)
        self.seq = prev + 3
        level = [(price, size)]
        arg = {"channel": "books", "instId": self.inst_id}
        push = self._book_push(
            arg, "update", prev, level if side == "bid" else [], level if side == "ask" else []
        )
        await self.ws.push(push)

    async def trade(self, price: str, size: str, side: str, trade_id: str) -> None:
        arg = {"channel": "trades", "instId": self.inst_id}
        item = {
            "instId": self.inst_id,
            "tradeId": trade_id,
            "px": price,
            "sz": size,
            "side": side,
            "ts": str(TS_MS),
            "count": "1",
        }
        await self.ws.push({"arg": arg, "data": [item]})

    async def notice(self) -> None:
        await self.ws.push(
            {
                "event": "notice",
                "code": "64008",
                "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
                "connId": "fake0001",
            }
        )


class FakeBybit:
    """`/v5/public/<category>` (orderbook.N, publicTrade, tickers; `{"op": "ping"}` answered) and
    REST `/v5/market/orderbook`."""

    def __init__(self, http: FakeHttpServer, ws: FakeWsServer, symbol: str, book: FakeVenueBook) -> None:
        self.http = http
        self.ws = ws
        self.symbol = symbol
        self.book = book
        self.update_id = 1000
        self.subscribes: list[list[str]] = []
        self.unsubscribes: list[list[str]] = []
        self.pings = 0
        ws.on_message = self._on_message
        http.route("/v5/market/orderbook", self._rest_orderbook)

    def _rest_orderbook(self, request: Request) -> Response:
        if request.query.get("symbol") != self.symbol:
            return Response.json({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}})
        result = {
            "s": self.symbol,
            "b": [list(level) for level in self.book.sorted_bids()[:1]],
            "a": [list(level) for level in self.book.sorted_asks()[:1]],
            "ts": TS_MS,
            "u": self.update_id,
            "seq": self.update_id * 10,
            "cts": TS_MS,
        }
        return Response.json({"retCode": 0, "retMsg": "OK", "result": result, "time": TS_MS})

    async def _on_message(self, server: FakeWsServer, ws: ServerConnection, message: Any) -> None:
        op, req_id = message.get("op"), message.get("req_id", "")
        if op == "ping":
            self.pings += 1
            pong = {
                "success": True,
                "ret_msg": "pong",
                "conn_id": "fake-conn",
                "req_id": req_id,
                "op": "ping",
            }
            await ws.send(orjson.dumps(pong).decode())
            return
        args = message.get("args") or []
        ack = {"success": True, "ret_msg": "", "conn_id": "fake-conn", "req_id": req_id, "op": op}
        await ws.send(orjson.dumps(ack).decode())
        if op == "unsubscribe":
            self.unsubscribes.append(args)
            return
        self.subscribes.append(args)
        for topic in args:
            if topic.startswith("orderbook."):
                self.update_id += 7  # a new subscription's update id starts anywhere
                data = {
                    "s": self.symbol,
                    "b": [list(level) for level in self.book.sorted_bids()],
                    "a": [list(level) for level in self.book.sorted_asks()],
                    "u": self.update_id,
                    "seq": self.update_id * 10,
                }
                push = {"topic": topic, "type": "snapshot", "ts": TS_MS, "data": data, "cts": TS_MS}
                await ws.send(orjson.dumps(push).decode())

    async def delta(self, side: str, price: str, size: str, *, depth: int = 50, gap: bool = False) -> None:
        """One order book delta; `gap` skips an update id."""
        self.book.set(side, price, size)
        self.update_id += 2 if gap else 1
        level = [[price, size]]
        data = {
            "s": self.symbol,
            "b": level if side == "bid" else [],
            "a": level if side == "ask" else [],
            "u": self.update_id,
            "seq": self.update_id * 10,
        }
        await self.ws.push(
            {
                "topic": f"orderbook.{depth}.{self.symbol}",
                "type": "delta",
                "ts": TS_MS + 1,
                "data": data,
                "cts": TS_MS,
            }
        )

    async def trade(self, price: str, size: str, side: str, trade_id: str) -> None:
        item = {
            "T": TS_MS,
            "s": self.symbol,
            "S": side,
            "v": size,
            "p": price,
            "L": "PlusTick",
            "i": trade_id,
            "BT": False,
        }
        await self.ws.push(
            {"topic": f"publicTrade.{self.symbol}", "type": "snapshot", "ts": TS_MS, "data": [item]}
        )


class FakeCoinbase:
    """Advanced Trade WebSocket (level2 → `l2_data`, ticker, market_trades, heartbeats;
    `sequence_num` per connection across channels) and REST `product_book`."""

    def __init__(self, http: FakeHttpServer, ws: FakeWsServer, product: str, book: FakeVenueBook) -> None:
        self.http = http
        self.ws = ws
        self.product = product
        self.book = book
        self.sequence: dict[ServerConnection, int] = {}
        self.subscribes: list[tuple[str, list[str]]] = []
        self.unsubscribes: list[tuple[str, list[str]]] = []
        ws.on_message = self._on_message
        http.route("/api/v3/brokerage/market/product_book", self._rest_book)

    def _rest_book(self, request: Request) -> Response:
        bids = [{"price": p, "size": s} for p, s in self.book.sorted_bids()[:1]]
        asks = [{"price": p, "size": s} for p, s in self.book.sorted_asks()[:1]]
        book = {
            "product_id": request.query.get("product_id"),
            "bids": bids,
            "asks": asks,
            "time": "2026-04-07T00:28:59.662782Z",
        }
        return Response.json({"pricebook": book, "last": "1", "mid_market": "1"})

    def _envelope(
        self, ws: ServerConnection, channel: str, events: list[dict[str, Any]], skip: bool = False
    ) -> str:
        number = self.sequence.get(ws, -1) + (2 if skip else 1)
        self.sequence[ws] = number
        message = {
            "channel": channel,
            "client_id": "",
            "timestamp": "2026-04-07T14:30:00.123456789Z",
            "sequence_num": number,
            "events": events,
        }
        return orjson.dumps(message).decode()

    def _updates(self, rows: list[tuple[str, str, str]]) -> list[dict[str, str]]:
        return [
            {"side": side, "event_time": "2026-04-07T14:30:00Z", "price_level": p, "new_quantity": q}
            for side, p, q in rows
        ]

    async def _on_message(self, server: FakeWsServer, ws: ServerConnection, message: Any) -> None:
        kind, channel, products = (
            message.get("type"),
            message.get("channel"),
            message.get("product_ids") or [],
        )
        if kind == "unsubscribe":
            self.unsubscribes.append((channel, products))
        elif kind == "subscribe":
            self.subscribes.append((channel, products))
        else:
            await ws.send(orjson.dumps({"type": "error", "message": "unknown type"}).decode())
            return
        await ws.send(self._envelope(ws, "subscriptions", [{"subscriptions": {channel: products}}]))
        if kind == "subscribe" and channel == "level2":
            rows = [("bid", p, s) for p, s in self.book.sorted_bids()] + [
                ("offer", p, s) for p, s in self.book.sorted_asks()
            ]
            event = {"type": "snapshot", "product_id": self.product, "updates": self._updates(rows)}
            await ws.send(self._envelope(ws, "l2_data", [event]))

    async def update(self, side: str, price: str, quantity: str, *, skip: bool = False) -> None:
        """One level2 update to every connection; `skip` loses one message of the connection."""
        self.book.set("bid" if side == "bid" else "ask", price, quantity)
        event = {
            "type": "update",
            "product_id": self.product,
            "updates": self._updates([(side, price, quantity)]),
        }
        for ws in list(self.ws.connections):
            await ws.send(self._envelope(ws, "l2_data", [event], skip=skip))

    async def heartbeat(self) -> None:
        for ws in list(self.ws.connections):
            await ws.send(
                self._envelope(
                    ws,
                    "heartbeats",
                    [{"current_time": "2026-04-07 14:30:10.000000000+00:00", "heartbeat_counter": 1}],
                )
            )
