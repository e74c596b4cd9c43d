"""What the Alpaca surface's e2e tests share: a server with a spot book and an Alpaca key per trader.

No tests here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.e2e.test_api_harness import Server, create_demo_markets
from tradehall.client import Client


@dataclass
class AlpacaTrader:
    client: Client
    account_id: str
    key_id: str
    secret: str
    base: str
    """`url_override` / ccxt's `urls.api`: http://host:port/alpaca."""

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret}


def alpaca_trader(server: Server, funded: str = "100000", **key: Any) -> AlpacaTrader:
    client, account_id = server.trader(funded)
    created = client.create_api_key("alpaca", **key)
    return AlpacaTrader(client, account_id, created["key_id"], created["api_key"], server.url + "/alpaca")


def seed_book(server: Server, *, levels: int = 5) -> tuple[Client, str]:
    """BTC-USD (and the perp and binary demo markets) with a maker quoting asks from 50000 and bids from
    49000 downwards, 1 BTC a level, 10 USD apart."""
    admin = server.admin()
    if not any(market["symbol"] == "BTC-USD" for market in admin.markets()["items"]):
        create_demo_markets(admin)
    maker, account = server.trader("10000000")
    admin.deposit(account, "100", "BTC")
    for level in range(levels):
        maker.place_order(
            account_id=account,
            market="BTC-USD",
            side="sell",
            type="limit",
            quantity="1",
            price=str(50000 + 10 * level),
        )
        maker.place_order(
            account_id=account,
            market="BTC-USD",
            side="buy",
            type="limit",
            quantity="1",
            price=str(49000 - 10 * level),
        )
    return maker, account
