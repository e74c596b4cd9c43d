"""The bus-fed book channel without a broker: deltas that arrive before the snapshot are replayed after
it, deltas it already holds are skipped, and a gap resyncs with a fresh snapshot."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from tradehall.api.ws import Connection, WebSocketHub
from tradehall.bus import Envelope
from tradehall.service.settings import Settings


def book_changed(sequence: int, asks: list[list[str]]) -> Envelope:
    return Envelope(
        id=f"{sequence}:0",
        seq=sequence,
        index=0,
        type="BookChanged",
        schema_version=1,
        correlation_id="",
        ts=sequence,
        time="",
        topic="market-data.book-ticks",
        key="BTC-USD",
        payload={"market": "BTC-USD", "sequence": sequence, "bids": [], "asks": asks},
    )


def sent(connection: Connection) -> list[tuple[str, int, Any]]:
    messages = []
    while not connection.queue.empty():
        text = connection.queue.get_nowait()
        assert text is not None
        message = orjson.loads(text)
        messages.append((message["type"], message["sequence"], message["data"]["asks"]))
    return messages


async def test_replay_skip_and_resync(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ws_source="bus", engine_url="http://engine.invalid")
    hub = WebSocketHub(SimpleNamespace(settings=settings))  # type: ignore[arg-type]
    snapshots = [
        {"symbol": "BTC-USD", "sequence": 5, "bids": [], "asks": [["100", "1"]]},
        {"symbol": "BTC-USD", "sequence": 10, "bids": [], "asks": [["100", "1"], ["103", "4"]]},
    ]
    answered = asyncio.Event()

    async def fetch_book(symbol: str) -> dict[str, Any]:
        await answered.wait()
        return snapshots.pop(0)

    hub._fetch_book = fetch_book  # type: ignore[method-assign]
    connection = Connection(websocket=None, max_queue=100)  # type: ignore[arg-type]
    connection.channels.add("book:BTC-USD")
    hub.public["book:BTC-USD"] = {connection}
    hub._send_book_snapshot(connection, "BTC-USD")
    # the bus is ahead of the snapshot the engine will answer: 4 and 5 are in it, 6 and 7 are not
    for sequence in (4, 5, 6, 7):
        hub.on_envelope(book_changed(sequence, [[str(100 + sequence), "1"]]))
    assert sent(connection) == []  # nothing before the snapshot
    answered.set()
    await asyncio.gather(*hub._resyncs)
    assert sent(connection) == [
        ("snapshot", 5, [["100", "1"]]),
        ("update", 6, [["106", "1"]]),
        ("update", 7, [["107", "1"]]),
    ]
    hub.on_envelope(book_changed(7, [["107", "1"]]))  # a copy: skipped
    hub.on_envelope(book_changed(8, [["108", "1"]]))
    hub.on_envelope(book_changed(10, [["103", "4"]]))  # 9 was lost: resync
    await asyncio.gather(*hub._resyncs)
    assert sent(connection) == [("update", 8, [["108", "1"]]), ("snapshot", 10, [["100", "1"], ["103", "4"]])]
    assert hub.resyncs == 1
    hub.on_envelope(book_changed(11, [["111", "1"]]))
    assert sent(connection) == [("update", 11, [["111", "1"]])]
    await hub.close()
