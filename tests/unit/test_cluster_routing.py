"""The gateway's shard router (service/cluster/routing.py): each command to its shard's leader, retried
with the same client order id across a takeover, exactly once by the engine's idempotency."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.engine_support import perp_spec, spot_spec
from tests.fakes.cluster import DOWN, LOSE_REPLY, FakeShard, FakeTime
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import OrderSide
from tradehall.domain.errors import Code
from tradehall.service.cluster.routing import ClusterUnavailableError, ShardRouter
from tradehall.service.cluster.shards import ShardMap, UnknownMarketError, shard_configure

SHARDS = ShardMap.parse("A=BTC-USD;B=BTC-PERP")


async def _cluster(**router: float) -> tuple[ShardRouter, dict[str, FakeShard], FakeTime]:
    shards = {name: FakeShard(name) for name in SHARDS.names}
    clock = FakeTime()
    routed = ShardRouter(
        SHARDS,
        shards,
        request_timeout=1.0,
        retry_seconds=router.get("retry_seconds", 10.0),
        backoff=(0.1, 1.0),
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    for name in SHARDS.names:  # what each shard's leader does before serving
        await routed.submit_to(name, shard_configure(SHARDS, name))
    await routed.submit(c.CreateMarket(spec=spot_spec("BTC-USD")))
    await routed.submit(c.CreateMarket(spec=perp_spec("BTC-PERP")))
    await routed.submit(c.OpenAccount(account_id="alice", owner="u1"))
    await routed.submit(c.Deposit(account_id="alice", amount=D("1000")))  # the home shard: A
    await routed.submit_to("B", c.Deposit(account_id="alice", amount=D("1000")))
    return routed, shards, clock


def _order(market: str, client_order_id: str | None = "o-1") -> c.PlaceOrder:
    return c.PlaceOrder(
        account_id="alice",
        market=market,
        side=OrderSide.BUY,
        quantity=D("0.01"),
        price=D("100"),
        client_order_id=client_order_id,
    )


def _accepted(events: tuple[ev.AnyEvent, ...]) -> ev.OrderAccepted:
    (accepted,) = [e for e in events if isinstance(e, ev.OrderAccepted)]
    return accepted


async def test_orders_for_markets_of_two_shards_land_on_their_shards() -> None:
    router, shards, _ = await _cluster()
    spot = _accepted((await router.submit(_order("BTC-USD"))).events)
    perp = _accepted((await router.submit(_order("BTC-PERP", "o-2"))).events)
    assert [o.market for o in shards["A"].engine.orders.values()] == ["BTC-USD"]
    assert [o.market for o in shards["B"].engine.orders.values()] == ["BTC-PERP"]
    # each shard's ids are its own range, so a cancel by id finds its shard
    assert spot.order_id == 1 and perp.order_id == SHARDS.id_base("B") + 1
    cancelled = await router.submit(c.CancelOrder(order_id=perp.order_id, account_id="alice"))
    assert [type(e) for e in cancelled.events][:1] == [ev.OrderCancelled]
    assert not shards["B"].engine.orders and len(shards["A"].engine.orders) == 1
    # the account exists in both shards; the router sent the deposit to the home shard (A)
    assert [s.engine.accounts["alice"].balances["USD"].total for s in shards.values()] == [100_000, 100_000]
    with pytest.raises(UnknownMarketError):
        await router.submit(_order("DOGE-USD"))


async def test_a_retry_with_the_same_client_order_id_across_a_takeover_yields_one_order() -> None:
    router, shards, clock = await _cluster()
    # the leader journals the order and dies before answering; no leader for two tries; the standby serves
    shards["B"].faults = [LOSE_REPLY, DOWN, DOWN]
    result = await router.submit(_order("BTC-PERP", "o-7"))
    assert result.events == ()  # the engine's answer to a repeat: the original order stands
    engine = shards["B"].engine
    assert [(o.client_order_id, o.remaining) for o in engine.orders.values()] == [("o-7", 10)]
    assert engine.order_id_for("alice", "o-7") == SHARDS.id_base("B") + 1
    assert len([cmd for cmd in shards["B"].commands if isinstance(cmd, c.PlaceOrder)]) == 2
    assert router.retries == 3 and clock.sleeps == [0.1, 0.2, 0.4]


async def test_an_order_without_client_order_id_is_not_sent_twice_after_a_timeout() -> None:
    router, shards, _ = await _cluster()
    shards["A"].faults = [LOSE_REPLY]
    with pytest.raises(ClusterUnavailableError) as caught:
        await router.submit(_order("BTC-USD", None))
    assert "may or may not have been applied: retry it with the same client_order_id" in str(caught.value)
    assert len(shards["A"].engine.orders) == 1 and router.retries == 0


async def test_no_leader_until_the_deadline_is_a_clear_503() -> None:
    router, shards, clock = await _cluster(retry_seconds=2.0)
    shards["A"].faults = [DOWN] * 100
    with pytest.raises(ClusterUnavailableError) as caught:
        await router.submit(_order("BTC-USD"))
    assert str(caught.value).startswith("shard A has no leader that answered within 2 s")
    assert str(caught.value).endswith("the command was not applied")
    assert clock.now == pytest.approx(2.0) and not shards["A"].engine.orders


async def test_opening_an_account_retried_after_a_lost_reply_is_not_a_conflict() -> None:
    router, shards, _ = await _cluster()
    shards["B"].faults = [LOSE_REPLY]
    result = await router.submit(c.OpenAccount(account_id="bob", owner="u2"))
    assert [type(e) for e in result.events] == [ev.AccountOpened]  # from A; B's repeat says nothing
    assert "bob" in shards["A"].engine.accounts and "bob" in shards["B"].engine.accounts
    again = await router.submit(c.OpenAccount(account_id="bob", owner="u2"))  # a real second open
    assert {e.code for e in again.events if isinstance(e, ev.CommandRejected)} == {Code.CONFLICT}


def test_transfers_name_their_shards() -> None:
    router = ShardRouter(SHARDS, {name: FakeShard(name) for name in SHARDS.names})
    with pytest.raises(ValueError, match="TransferOut names its shard: use submit_to"):
        router.shards_for(c.TransferOut(transfer_id="t", account_id="a", amount=D(1), to_shard="B"))
    assert router.shards_for(c.CancelAll(account_id="a")) == ["A", "B"]
    assert router.shards_for(
        c.RouteOrder(account_id="a", instrument="BTC-USD", side=OrderSide.BUY, quantity=D(1))
    ) == ["A"]
