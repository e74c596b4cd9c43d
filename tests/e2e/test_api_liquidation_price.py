"""Through a real server: liquidation compares exact equity with exact maintenance, and the
`liquidation_price` a position shows is the first tick at which it is liquidated.

The issue's figures: a long whose equity (141.435) is above its maintenance (141.430625) by less than
a cent at a mark of 16,163.5 survives it; a short whose exact liquidation price is 46,016.5017 shows
46,016.51 on its 0.01 tick and survives a mark of 46,016.50. A mark one tick short of the shown price
leaves each alone, a mark at it liquidates. Money is shown in cents, in the venue's favour.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import AsyncClient, Client, Stream


def perp(admin: Client, symbol: str, tick: str, initial: str, maintenance: str) -> None:
    admin.create_market(
        symbol=symbol,
        kind="perp",
        base="BTC",
        quote="USD",
        tick_size=tick,
        lot_size="0.001",
        initial_margin=initial,
        maintenance_margin=maintenance,
        maker_fee="0",
        taker_fee="0",
    )


def open_position(
    server: Server, symbol: str, side: str, quantity: str, price: str, deposit: str
) -> tuple[Client, str]:
    maker, maker_id = server.trader(funded="10000000")
    trader, account_id = server.trader(funded=deposit)
    other = "sell" if side == "buy" else "buy"
    assert maker.place_order(maker_id, symbol, other, quantity, price)["status"] == "open"
    assert trader.place_order(account_id, symbol, side, quantity, price)["status"] == "filled"
    return trader, account_id


def position_of(trader: Client, account_id: str) -> dict[str, str] | None:
    items = trader.positions(account_id)["items"]
    return items[0] if items else None


def test_a_long_and_a_short_survive_one_tick_short_of_their_liquidation_price_and_go_at_it(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        perp(admin, "LONG-PERP", "0.5", "0.06", "0.05")
        perp(admin, "SHORT-PERP", "0.01", "0.01", "0.004")

        long_trader, long_id = open_position(server, "LONG-PERP", "buy", "0.175", "17000.5", "287.91")
        admin.set_price("LONG-PERP", "16163.5")
        position = position_of(long_trader, long_id)
        assert position is not None and position["quantity"] == "0.175"
        # 287.91 - 0.175 x 837 = 141.435 above 0.05 x 0.175 x 16,163.5 = 141.430625: not liquidated
        account = long_trader.account(long_id)
        assert (account["equity"], account["unrealized_pnl"]) == ("141.43", "-146.48")  # down, in cents
        assert Decimal(position["liquidation_price"]) == Decimal("16163")  # 16,163.4736... floored
        assert position["unrealized_pnl"] == "-146.48"
        admin.set_price("LONG-PERP", "16163")
        assert position_of(long_trader, long_id) is None

        short_trader, short_id = open_position(server, "SHORT-PERP", "sell", "0.026", "44273.26", "50.11")
        position = position_of(short_trader, short_id)
        assert position is not None
        assert position["liquidation_price"] == "46016.51"  # 46,016.50168... ceiled to the 0.01 tick
        admin.set_price("SHORT-PERP", "46016.50")
        position = position_of(short_trader, short_id)
        assert position is not None and position["liquidation_price"] == "46016.51"
        admin.set_price("SHORT-PERP", "46016.51")
        assert position_of(short_trader, short_id) is None


def test_the_liquidation_price_follows_deposits_and_funding(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        perp(admin, "LONG-PERP", "0.5", "0.06", "0.05")
        trader, account_id = open_position(server, "LONG-PERP", "buy", "0.175", "17000.5", "287.91")
        admin.set_price("LONG-PERP", "16500")

        def shown() -> Decimal:
            position = position_of(trader, account_id)
            assert position is not None
            return Decimal(position["liquidation_price"])

        assert shown() == Decimal("16163")
        admin.deposit(account_id, "10")
        assert shown() == Decimal("16103")  # (287.91 + 10 - 2,975.0875) / 0.16625, floored to 0.5
        admin.apply_funding("LONG-PERP", "0.001")  # the long pays 0.001 x 0.175 x 16,500 = 2.8875 -> 2.89
        assert shown() == Decimal("16120.5")


async def next_position(stream: Stream) -> dict[str, Any]:
    while True:
        message = await stream.next(5.0)
        if message.get("channel") == "positions" and message.get("type") == "update":
            return dict(message["data"])


async def test_the_positions_channel_sends_the_new_liquidation_price_after_a_deposit_and_funding(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        perp(admin, "LONG-PERP", "0.5", "0.06", "0.05")
        trader, account_id = open_position(server, "LONG-PERP", "buy", "0.175", "17000.5", "287.91")
        admin.set_price("LONG-PERP", "16500")
        async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
            await stream.subscribe(["positions"])
            admin.deposit(account_id, "10")
            update = await next_position(stream)
            assert (update["market"], Decimal(update["liquidation_price"])) == ("LONG-PERP", Decimal("16103"))
            admin.apply_funding("LONG-PERP", "0.001")
            update = await next_position(stream)
            assert Decimal(update["liquidation_price"]) == Decimal("16120.5")
