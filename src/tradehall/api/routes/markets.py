"""Markets (public) and their administration."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from tradehall.api import convert
from tradehall.api.errors import ApiError
from tradehall.api.gateway import AdminDep, CorrelationDep, Gateway, GatewayDep
from tradehall.api.routes.common import ERRORS, Cursor, Limit, json_response, page, time_ns
from tradehall.api.schemas import (
    BookOut,
    CandlesPage,
    FundingRequest,
    MarketCreate,
    MarketOut,
    MarketsPage,
    PriceRequest,
    PublicTradesPage,
    SettleRequest,
    TickerOut,
)
from tradehall.domain.commands import (
    ApplyFunding,
    CreateMarket,
    MarkPrice,
    Quote,
    SetMarketStatus,
    SettleMarket,
    VoidMarket,
)
from tradehall.domain.enums import FeeModel, MarketKind, MarketStatus, Outcome, Venue
from tradehall.domain.errors import Code, TradehallError
from tradehall.domain.fixedpoint import check_funding_rate, parse_decimal
from tradehall.domain.market import MarketSpec, instrument_of
from tradehall.engine import views
from tradehall.store import queries

router = APIRouter(tags=["markets"], responses=ERRORS)

_RESOLVED = (MarketStatus.SETTLED, MarketStatus.CANCELLED)


async def _resolutions(gateway: Gateway, symbols: list[str]) -> dict[str, tuple[str | None, datetime | None]]:
    """(outcome, settled_at) of settled or voided markets, from the read models (the engine keeps
    neither); read after a barrier, so a settlement that has answered shows."""
    if not symbols:
        return {}
    await gateway.service.read_barrier()
    rows = await gateway.service.store.call(queries.list_markets)
    wanted = set(symbols)
    return {row.symbol: (row.outcome, row.settled_at) for row in rows if row.symbol in wanted}


@router.get(
    "/markets",
    response_model=MarketsPage,
    summary="List markets",
    description="Every market with its kind (spot, perp, binary), venue (book or quote), tick and lot "
    "sizes, fees and status; `instrument` lists only the markets of one instrument (its venues). Public: "
    "no credentials needed.",
)
async def list_markets(
    gateway: GatewayDep, instrument: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    markets = [market for engine in gateway.engines() for market in views.markets(engine)]
    markets.sort(key=lambda market: market.symbol)  # a cluster's shards, merged
    if instrument is not None:
        markets = [m for m in markets if instrument_of(m.spec) == instrument]
    resolved = await _resolutions(gateway, [m.symbol for m in markets if m.status in _RESOLVED])
    return json_response(
        page([convert.market_dict(m, *resolved.get(m.symbol, (None, None))) for m in markets])
    )


async def _market_out(gateway: Gateway, symbol: str) -> dict[str, Any]:
    market = gateway.market(symbol)
    resolved = await _resolutions(gateway, [symbol] if market.status in _RESOLVED else [])
    return convert.market_dict(market, *resolved.get(symbol, (None, None)))


@router.get("/markets/{symbol}", response_model=MarketOut, summary="Get a market")
async def get_market(symbol: str, gateway: GatewayDep) -> Response:
    """A settled binary market shows its `outcome` and `settled_at` (a voided one `settled_at`)."""
    return json_response(await _market_out(gateway, symbol))


@router.get(
    "/markets/{symbol}/book",
    response_model=BookOut,
    summary="Order book",
    description="Up to `depth` price levels per side as `[price, quantity]`: bids best first "
    "(descending), asks ascending; binary markets in YES prices. `sequence` is the counter of the "
    "WebSocket `book` channel. Public.",
)
async def get_book(
    symbol: str, gateway: GatewayDep, depth: Annotated[int, Query(ge=1, le=1000)] = 20
) -> Response:
    return json_response(convert.book_dict(gateway.book(symbol, depth)))


@router.get(
    "/markets/{symbol}/ticker",
    response_model=TickerOut,
    summary="Ticker",
    description="Best bid and ask, last trade price, mark and the traded volume of the last 24 hours. "
    "Public.",
)
async def get_ticker(symbol: str, gateway: GatewayDep) -> Response:
    market = gateway.market(symbol)
    return json_response(convert.ticker_dict(market, gateway.volumes.volume(symbol)))


@router.get(
    "/markets/{symbol}/trades",
    response_model=PublicTradesPage,
    summary="Public trades",
    description="The market's trades, newest first, with cursor pagination (`limit`, `next_cursor`). Public.",
)
async def get_trades(
    symbol: str,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    gateway.spec(symbol)
    await gateway.service.read_barrier()
    result = await gateway.service.store.call(queries.list_market_trades, symbol, limit=limit, cursor=cursor)
    items = [
        {
            "id": str(row.trade_id),
            "market": row.market,
            "price": convert.dec(row.price),
            "quantity": convert.dec(row.quantity),
            "side": row.side,
            "executed_at": convert.rfc3339(row.executed_at),
        }
        for row in result.items
    ]
    return json_response(page(items, result.next_cursor))


@router.get(
    "/markets/{symbol}/candles",
    response_model=CandlesPage,
    summary="Candles",
    description="OHLCV candles of `interval`, oldest first, between `start` and `end` (RFC 3339 with a "
    "time zone); with `start` the pages go forward by `next_cursor`. Book markets' candles come from "
    "their trades, quote markets' from their feed. Public.",
)
async def get_candles(
    symbol: str,
    gateway: GatewayDep,
    interval: Literal["1m", "5m", "15m", "1h", "1d"] = "1m",
    start: Annotated[str | None, Query(max_length=64)] = None,
    end: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Response:
    """Oldest first from the read models: the projector's candles of the engine's trades (book venues)
    and the feeds' candles (quote venues, `CandleWriter`); with `start`, pages forward by `next_cursor`."""
    gateway.spec(symbol)
    time_ns(start, "start")  # validates: RFC 3339 with a time zone
    time_ns(end, "end")
    start_at = None if start is None else datetime.fromisoformat(start)
    end_at = None if end is None else datetime.fromisoformat(end)
    await gateway.service.read_barrier()
    stored = await gateway.service.store.call(
        queries.list_candles,
        symbol,
        interval,
        start=start_at,
        end=end_at,
        limit=limit,
        cursor=cursor,
        oldest_first=True,
    )
    # feeds store prices as the provider wrote them ("67000.10000000"): the API's decimals are plain
    items = [
        {
            "t": convert.rfc3339(row.start),
            "open": convert.dec(row.open.normalize()),
            "high": convert.dec(row.high.normalize()),
            "low": convert.dec(row.low.normalize()),
            "close": convert.dec(row.close.normalize()),
            "volume": convert.dec(row.volume.normalize()),
        }
        for row in stored.items
    ]
    return json_response(page(items, stored.next_cursor))


# ---- administration ---------------------------------------------------------------------------------


def _dec(value: str | None, what: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_decimal(value, what)
    except TradehallError as error:
        raise ApiError(Code.INVALID_REQUEST, error.detail) from None


def _funding_rate(value: str | None, what: str) -> Decimal | None:
    """A funding rate to at most 8 decimals; a finer one is refused with 422, never truncated."""
    rate = _dec(value, what)
    return None if rate is None else check_funding_rate(rate, what)


def _spec_of(body: MarketCreate) -> MarketSpec:
    tick = _dec(body.tick_size, "tick_size")
    lot = _dec(body.lot_size, "lot_size")
    assert tick is not None and lot is not None
    if tick <= 0 or lot <= 0:
        raise ApiError(Code.INVALID_REQUEST, "tick_size and lot_size must be positive")
    for name in (
        "maker_fee",
        "taker_fee",
        "max_leverage",
        "initial_margin",
        "maintenance_margin",
        "slippage",
        "max_order_notional",
        "max_position",
        "price_band",
    ):
        value = _dec(getattr(body, name), name)
        if value is not None and value < 0:
            raise ApiError(Code.INVALID_REQUEST, f"{name} must not be negative")
    maker_fee, taker_fee = _dec(body.maker_fee, "maker_fee"), _dec(body.taker_fee, "taker_fee")
    if body.venue == "quote" and body.fee_model == "proportional":
        # paper trading's default fees: 0.1 % on crypto, 0.2 % on prediction markets
        default_fee = Decimal("0.002") if body.kind == "binary" else Decimal("0.001")
        maker_fee = default_fee if maker_fee is None else maker_fee
        taker_fee = default_fee if taker_fee is None else taker_fee
    return MarketSpec(
        symbol=body.symbol,
        instrument=body.instrument,
        kind=MarketKind(body.kind),
        venue=Venue(body.venue),
        base=body.base,
        quote=body.quote,
        tick_size=tick,
        lot_size=lot,
        min_quantity=_dec(body.min_quantity, "min_quantity"),
        max_quantity=_dec(body.max_quantity, "max_quantity"),
        maker_fee=maker_fee or Decimal(0),
        taker_fee=taker_fee or Decimal(0),
        fee_model=FeeModel(body.fee_model),
        max_leverage=_dec(body.max_leverage, "max_leverage"),
        initial_margin=_dec(body.initial_margin, "initial_margin"),
        maintenance_margin=_dec(body.maintenance_margin, "maintenance_margin"),
        status=MarketStatus(body.status),
        slippage=_dec(body.slippage, "slippage"),
        latency_ms=body.latency_ms,
        latency_jitter_ms=body.latency_jitter_ms,
        quote_max_age_ms=body.quote_max_age_ms,
        max_order_notional=_dec(body.max_order_notional, "max_order_notional"),
        max_position=_dec(body.max_position, "max_position"),
        price_band=_dec(body.price_band, "price_band"),
        price_protection=_dec(body.price_protection, "price_protection"),
        mark_band=_dec(body.mark_band, "mark_band") or Decimal(0),
        funding_interval_seconds=body.funding_interval_seconds,
        funding_rate=_funding_rate(body.funding_rate, "funding_rate"),
        close_time=time_ns(body.close_time, "close_time"),
    )


@router.post(
    "/admin/markets",
    status_code=201,
    response_model=MarketOut,
    summary="Create a market (admin)",
    description="A spot, perp or binary market on a `book` venue (orders match each other) or a `quote` "
    'venue (orders fill against an external quote). Fees are decimal fractions (`"0.001"` = 0.1 %); '
    "a new market is `open` unless `status` says otherwise. 409 `conflict` if the symbol exists.",
)
async def create_market(
    body: MarketCreate, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    await gateway.execute(CreateMarket(spec=_spec_of(body), correlation_id=correlation_id))
    return json_response(convert.market_dict(gateway.market(body.symbol)), 201)


async def _set_status(gateway: Gateway, symbol: str, status: MarketStatus, correlation_id: str) -> Response:
    gateway.spec(symbol)
    await gateway.execute(SetMarketStatus(market=symbol, status=status, correlation_id=correlation_id))
    return json_response(convert.market_dict(gateway.market(symbol)))


@router.post(
    "/admin/markets/{symbol}/halt",
    response_model=MarketOut,
    summary="Halt a market (admin)",
    description="New orders are refused with 409 `market_closed`; resting orders stay and may be "
    "cancelled. No body.",
)
async def halt_market(
    symbol: str, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    return await _set_status(gateway, symbol, MarketStatus.HALTED, correlation_id)


@router.post(
    "/admin/markets/{symbol}/resume",
    response_model=MarketOut,
    summary="Resume a market (admin)",
    description="Opens a halted market for trading again. No body.",
)
async def resume_market(
    symbol: str, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    return await _set_status(gateway, symbol, MarketStatus.OPEN, correlation_id)


@router.post(
    "/admin/markets/{symbol}/settle",
    response_model=MarketOut,
    summary="Settle a binary market (admin)",
    description="Resolves the event: each contract of the winning `outcome` pays 1, the other 0; open "
    "orders are cancelled. The market then shows `outcome` and `settled_at`.",
)
async def settle_market(
    symbol: str, body: SettleRequest, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    gateway.spec(symbol)
    await gateway.execute(
        SettleMarket(market=symbol, outcome=Outcome(body.outcome), correlation_id=correlation_id)
    )
    return json_response(await _market_out(gateway, symbol))


@router.post(
    "/admin/markets/{symbol}/cancel",
    response_model=MarketOut,
    summary="Void a binary market (admin)",
    description="Voids the event: every YES and every NO contract pays 0.50, so the payouts sum to the "
    "collateral held (fees are not refunded); each payout is a `void_refund` in the ledger. No body.",
)
async def void_market(
    symbol: str, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    gateway.spec(symbol)
    await gateway.execute(VoidMarket(market=symbol, correlation_id=correlation_id))
    return json_response(await _market_out(gateway, symbol))


@router.post(
    "/admin/markets/{symbol}/price",
    response_model=MarketOut,
    summary="Inject a mark or quote (admin)",
    description="On a book market, sets the mark (refused with 400 while outside the market's "
    "`mark_band` around its book); on a quote market, sets the quote (`bid`/`ask`, both `price` "
    "unless given) and last price. For markets without a feed.",
)
async def inject_price(
    symbol: str, body: PriceRequest, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    market = gateway.market(symbol)
    price = _dec(body.price, "price")
    assert price is not None
    if market.venue is Venue.QUOTE:
        # a quote-venue market fills against quotes: the injected price is its quote
        bid = _dec(body.bid, "bid") if body.bid is not None else price
        ask = _dec(body.ask, "ask") if body.ask is not None else price
        await gateway.execute(
            Quote(market=symbol, bid=bid, ask=ask, last=price, source="admin", correlation_id=correlation_id)
        )
    else:
        await gateway.execute(MarkPrice(market=symbol, price=price, correlation_id=correlation_id))
    return json_response(convert.market_dict(gateway.market(symbol)))


@router.post("/admin/markets/{symbol}/funding", response_model=MarketOut, summary="Apply funding (admin)")
async def apply_funding(
    symbol: str, body: FundingRequest, _admin: AdminDep, gateway: GatewayDep, correlation_id: CorrelationDep
) -> Response:
    """One funding payment at `rate` x notional at the mark: longs pay shorts when positive. A rate
    has at most 8 decimals; a finer one is refused (422 `invalid_order`), never truncated."""
    gateway.spec(symbol)
    rate = _funding_rate(body.rate, "rate")
    assert rate is not None
    await gateway.execute(ApplyFunding(market=symbol, rate=rate, correlation_id=correlation_id))
    return json_response(convert.market_dict(gateway.market(symbol)))
