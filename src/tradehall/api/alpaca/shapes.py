"""tradehall's wire objects -> Alpaca's: orders, assets, accounts, positions, activities.

The Alpaca surface reads what the native API answers (the same dicts, built by `tradehall.api.convert`)
and renames, one function per object. Trading API numbers stay decimal strings as Alpaca sends them;
market data numbers are JSON numbers (see `marketdata`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradehall.api.alpaca.context import Asset
from tradehall.api.alpaca.ids import account_uuid, execution_uuid, number_of, order_uuid
from tradehall.api.convert import dec
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.engine.views import MarketView

STATUS_OF = {
    "open": "new",
    "pending_trigger": "new",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "cancelled": "canceled",
    "rejected": "rejected",
    "expired": "expired",
    "held": "held",
}
"""tradehall order status -> Alpaca's (an untriggered stop is `new` at Alpaca too)."""

TIME_IN_FORCE_OF = {"gtc": "gtc", "ioc": "ioc", "fok": "fok", "day": "day", "gtd": "gtc"}

OPEN_STATUSES = frozenset({"open", "pending_trigger", "partially_filled", "held"})


def order_out(order: dict[str, Any], symbol: str, asset_id: str) -> dict[str, Any]:
    """A native order (`GET /orders/{id}`) as Alpaca's order object; `legs` likewise."""
    status = order["status"]
    updated = order["updated_at"]
    kind = order["type"]
    price = order.get("price")
    client_order_id = order.get("client_order_id")
    order_uid = order_uuid(order["id"])
    legs = order.get("legs") or None
    parent = order.get("parent_order_id")
    alpaca_status = STATUS_OF.get(status, status)
    if status == "open" and order.get("filled_quantity") not in (None, "0"):
        alpaca_status = "partially_filled"
    return {
        "id": order_uid,
        "client_order_id": client_order_id if client_order_id is not None else order_uid,
        "created_at": order["created_at"],
        "updated_at": updated,
        "submitted_at": order["created_at"],
        "filled_at": updated if status == "filled" else None,
        "expired_at": updated if status == "expired" else None,
        "canceled_at": updated if status == "cancelled" else None,
        "failed_at": updated if status == "rejected" else None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id,
        "symbol": symbol,
        "asset_class": "crypto",
        "notional": None,
        "qty": order["quantity"],
        "filled_qty": order["filled_quantity"],
        "filled_avg_price": order.get("average_price"),
        "order_class": order.get("order_class") or "simple",
        "order_type": kind,
        "type": kind,
        "side": order["side"],
        "position_intent": "buy_to_open" if order["side"] == "buy" else "sell_to_close",
        "time_in_force": TIME_IN_FORCE_OF.get(order["time_in_force"], order["time_in_force"]),
        "limit_price": price if kind in ("limit", "stop_limit") else None,
        "stop_price": order.get("stop_price"),
        "status": alpaca_status,
        "extended_hours": False,
        "legs": None if legs is None else [order_out(leg, symbol, asset_id) for leg in legs],
        "trail_percent": order.get("trail_percent"),
        "trail_price": order.get("trail_price"),
        "hwm": order.get("hwm"),
        "commission": order.get("fees"),
        "subtag": None,
        "source": None,
        "expires_at": order.get("expire_at"),
        "parent_order_id": None if parent is None else order_uuid(parent),
    }


def asset_out(asset: Asset, market: MarketView) -> dict[str, Any]:
    spec = asset.spec
    active = market.status.value == "open"
    return {
        "id": asset.asset_id,
        "class": "crypto",
        "exchange": "CRYPTO",
        "symbol": asset.symbol,
        "name": f"{spec.base} / {spec.quote}",
        "status": "active" if active or market.status.value == "halted" else "inactive",
        "tradable": active,
        "marginable": False,
        "maintenance_margin_requirement": 100,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": True,
        "min_order_size": decimal_str(spec.min_quantity or spec.lot_size),
        "min_trade_increment": decimal_str(spec.lot_size),
        "price_increment": decimal_str(spec.tick_size),
        "attributes": [],
        "tradehall_market": asset.market,
    }


def account_out(account: dict[str, Any], holdings_value: Decimal, created_at: str) -> dict[str, Any]:
    """A native account (`GET /accounts/{id}`) as Alpaca's: `cash` is the free balance of the account's
    currency, `equity` cash plus holdings at their mark, `position_market_value` those holdings."""
    active = account["status"] == "active" and account.get("trading_state") != "halted"
    cash = account["available"]
    equity = account["equity"]
    return {
        "id": account_uuid(account["id"]),
        "account_number": account["id"],
        "status": "ACTIVE" if account["status"] == "active" else "INACTIVE",
        "crypto_status": "ACTIVE" if account["status"] == "active" else "INACTIVE",
        "currency": account["currency"],
        "buying_power": cash,
        "regt_buying_power": cash,
        "daytrading_buying_power": "0",
        "effective_buying_power": cash,
        "non_marginable_buying_power": cash,
        "options_buying_power": "0",
        "bod_dtbp": "0",
        "cash": cash,
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": equity,
        "pattern_day_trader": False,
        "trading_blocked": not active,
        "transfers_blocked": False,
        "account_blocked": account["status"] == "closed",
        "created_at": created_at,
        "trade_suspended_by_user": False,
        "multiplier": "1",
        "shorting_enabled": False,
        "equity": equity,
        "last_equity": equity,
        "long_market_value": dec(holdings_value),
        "short_market_value": "0",
        "position_market_value": dec(holdings_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "daytrade_count": 0,
        "balance_asof": created_at[:10],
        "crypto_tier": 1,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "tradehall_account_id": account["id"],
    }


def position_out(
    account_id: str,
    asset: Asset,
    quantity: Decimal,
    available: Decimal,
    average_entry: Decimal | None,
    price: Decimal | None,
) -> dict[str, Any]:
    """A spot holding as Alpaca's position: `qty` the base held, `qty_available` what no order holds."""
    current = price if price is not None else average_entry
    entry = average_entry if average_entry is not None else current
    market_value = None if current is None else quantity * current
    cost_basis = None if entry is None else quantity * entry
    unrealized = None if market_value is None or cost_basis is None else market_value - cost_basis
    ratio = None if unrealized is None or not cost_basis else unrealized / cost_basis
    return {
        "asset_id": asset.asset_id,
        "symbol": asset.symbol,
        "exchange": "CRYPTO",
        "asset_class": "crypto",
        "asset_marginable": False,
        "qty": decimal_str(quantity),
        "qty_available": decimal_str(available),
        "avg_entry_price": _str(entry),
        "side": "long",
        "market_value": _str(market_value),
        "cost_basis": _str(cost_basis),
        "unrealized_pl": _str(unrealized),
        "unrealized_plpc": _str(None if ratio is None else ratio.quantize(Decimal("1e-12")).normalize()),
        "unrealized_intraday_pl": _str(unrealized),
        "unrealized_intraday_plpc": _str(
            None if ratio is None else ratio.quantize(Decimal("1e-12")).normalize()
        ),
        "current_price": _str(current),
        "lastday_price": _str(current),
        "change_today": "0",
        "tradehall_account_id": account_id,
    }


def _str(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value.normalize())


def activity_id(executed_at: str, fill_id: int | str) -> str:
    """Alpaca's activity id: `<yyyymmddhhmmssmmm>::<uuid>`; the UUID carries the fill's id (paging)."""
    digits = "".join(ch for ch in executed_at if ch.isdigit())
    stamp = (digits[:14] + (digits[14:17] or "000")).ljust(17, "0")
    return f"{stamp}::{execution_uuid(fill_id)}"


def fill_of_activity(activity: str) -> int | None:
    """The fill id inside an activity id (a `page_token`), else None."""
    _, _, tail = activity.partition("::")
    return number_of(2, tail)


def activity_out(
    fill: dict[str, Any],
    asset: Asset,
    account_id: str,
    cumulative: Decimal,
    order_quantity: Decimal,
    order_status: str,
) -> dict[str, Any]:
    """A native fill (`GET /trades`) as Alpaca's FILL activity; `cumulative` is the order's filled
    quantity up to and including this fill."""
    leaves = order_quantity - cumulative
    return {
        "id": activity_id(fill["executed_at"], fill["id"]),
        "account_id": account_uuid(account_id),
        "activity_type": "FILL",
        "transaction_time": fill["executed_at"],
        "type": "fill" if leaves <= 0 else "partial_fill",
        "price": fill["price"],
        "qty": fill["quantity"],
        "side": fill["side"],
        "symbol": asset.symbol,
        "leaves_qty": decimal_str(max(leaves, Decimal(0)).normalize()),
        "order_id": order_uuid(fill["order_id"]),
        "cum_qty": decimal_str(cumulative.normalize()),
        "order_status": STATUS_OF.get(order_status, order_status),
        "execution_id": execution_uuid(fill["id"]),
        "fee": fill["fee"],
    }


def ticks(value: int | None, size: Decimal) -> Decimal | None:
    return None if value is None else decimal_of(value, size)
