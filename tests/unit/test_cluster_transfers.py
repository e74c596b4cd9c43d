"""Collateral between shards (service/cluster/transfers.py over engine/transfers.py): the coordinator
killed between its steps, shards losing replies or without a leader; money is conserved across the
shards and no transfer happens twice."""

from __future__ import annotations

import contextlib
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.cluster import DOWN, LOSE_REPLY, FakeShard, FakeTime
from tradehall.domain import commands as c
from tradehall.domain.errors import Code, TradehallError
from tradehall.engine.ledger import SYSTEM_TRANSFERS
from tradehall.service.cluster.routing import ShardRouter
from tradehall.service.cluster.shards import ShardMap
from tradehall.service.cluster.transfers import (
    COMPLETED,
    CREDITED,
    FAILED,
    REFUNDED,
    REQUESTED,
    SENT,
    MemoryTransferStore,
    TransferCoordinator,
    TransferRecord,
)

SHARDS = ShardMap.parse("A=BTC-USD;B=ETH-USD")
CRASH_POINTS = ("out_applied", "in_applied", "in_refused", "completed", "refunded")


class Crash(BaseException):
    """The coordinator's process dies here (nothing in it catches this)."""


def _cluster(funds: str = "100") -> tuple[ShardRouter, dict[str, FakeShard]]:
    shards = {name: FakeShard(name) for name in SHARDS.names}
    for shard in shards.values():
        shard.engine.apply(c.OpenAccount(account_id="alice", owner="u1"))
    shards["A"].engine.apply(c.Deposit(account_id="alice", amount=D(funds)))
    clock = FakeTime()
    router = ShardRouter(SHARDS, shards, backoff=(0.1, 1.0), monotonic=clock.monotonic, sleep=clock.sleep)
    return router, shards


def _coordinator(
    router: ShardRouter, store: MemoryTransferStore, crash_at: str | None = None
) -> TransferCoordinator:
    def checkpoint(point: str, _record: TransferRecord) -> None:
        if point == crash_at:
            raise Crash(point)

    return TransferCoordinator(router.submit_to, store, SHARDS.names, checkpoint=checkpoint)


def _money(shards: dict[str, FakeShard], account: str = "alice") -> tuple[int, int, int]:
    """(the account's total in A, in B, money in transit: system:transfers over both shards)."""
    totals = []
    for name in ("A", "B"):
        found = shards[name].engine.accounts.get(account)
        balance = None if found is None else found.balances.get("USD")
        totals.append(0 if balance is None else balance.total)
    in_transit = 0
    for shard in shards.values():
        system = shard.engine.accounts.get(SYSTEM_TRANSFERS)
        in_transit += 0 if system is None else system.balance("USD").total
    return totals[0], totals[1], in_transit


async def test_a_transfer_moves_the_money_once() -> None:
    router, shards = _cluster()
    store = MemoryTransferStore()
    coordinator = _coordinator(router, store)
    record = await coordinator.transfer("t-1", "alice", "30.25", "A", "B")
    assert (record.state, record.currency, record.minor) == (COMPLETED, "USD", 3025)
    assert _money(shards) == (6975, 3025, 0)
    again = await coordinator.transfer("t-1", "alice", "30.25", "A", "B")  # the same request again
    assert again.state == COMPLETED and _money(shards) == (6975, 3025, 0)
    with pytest.raises(TradehallError) as caught:
        await coordinator.transfer("t-1", "alice", "31", "A", "B")
    assert caught.value.code is Code.CONFLICT
    for engine in (shards["A"].engine, shards["B"].engine):
        assert engine.ledger.totals() == {"USD": 0}


async def test_a_transfer_the_source_refuses_fails_and_moves_nothing() -> None:
    router, shards = _cluster("10")
    record = await _coordinator(router, MemoryTransferStore()).transfer("t-1", "alice", "10.01", "A", "B")
    assert record.state == FAILED
    assert record.reason == "the transfer needs 10.01 USD, 10.00 available"
    assert _money(shards) == (1000, 0, 0)


async def test_a_destination_without_the_account_refunds_with_its_reason() -> None:
    router, shards = _cluster()
    record = await _coordinator(router, MemoryTransferStore()).transfer("t-1", "bob", "5", "B", "A")
    assert record.state == FAILED  # bob has no account in B: refused at the source, nothing moved
    shards["A"].engine.apply(c.OpenAccount(account_id="carol", owner="u3"))
    shards["A"].engine.apply(c.Deposit(account_id="carol", amount=D("50")))
    record = await _coordinator(router, MemoryTransferStore()).transfer("t-2", "carol", "5", "A", "B")
    assert (record.state, record.reason) == (REFUNDED, "account carol not found in this shard")
    assert shards["A"].engine.accounts["carol"].balances["USD"].total == 5000
    assert shards["B"].engine.accounts.get(SYSTEM_TRANSFERS) is None


@pytest.mark.parametrize("crash_at", CRASH_POINTS[:2] + CRASH_POINTS[3:4])
async def test_the_coordinator_killed_between_steps_is_finished_by_recovery(crash_at: str) -> None:
    router, shards = _cluster()
    store = MemoryTransferStore()
    with pytest.raises(Crash):
        await _coordinator(router, store, crash_at).transfer("t-1", "alice", "40", "A", "B")
    stalled = await store.get("t-1")
    assert stalled is not None and stalled.state in (REQUESTED, SENT, CREDITED)
    a, b, in_transit = _money(shards)
    assert a + b + in_transit == 10000  # whatever point: every cent is somewhere
    (finished,) = await _coordinator(router, store).recover()  # a new coordinator process
    assert finished.state == COMPLETED
    assert _money(shards) == (6000, 4000, 0)
    assert await _coordinator(router, store).recover() == []


async def test_the_coordinator_killed_around_a_refund_refunds_once() -> None:
    router, shards = _cluster()
    shards["B"].engine.accounts.pop("alice")  # B knows no alice: it refuses the transfer
    store = MemoryTransferStore()
    with pytest.raises(Crash):
        await _coordinator(router, store, "in_refused").transfer("t-1", "alice", "40", "A", "B")
    with pytest.raises(Crash):
        await _coordinator(router, store, "refunded").recover()
    assert _money(shards)[0] == 10000  # refunded in A, not yet recorded
    (finished,) = await _coordinator(router, store).recover()
    assert (finished.state, finished.reason) == (REFUNDED, "account alice not found in this shard")
    assert (
        _money(shards)[0] == 10000 and shards["A"].engine.accounts[SYSTEM_TRANSFERS].balance("USD").total == 0
    )


@pytest.mark.parametrize(
    ("shard", "faults"),
    [
        ("A", [LOSE_REPLY]),  # the source journals step 1 and dies before answering
        ("A", [DOWN, DOWN, LOSE_REPLY, DOWN]),  # the source's takeover around step 1
        ("B", [DOWN, DOWN, DOWN]),  # the destination has no leader before step 2
        ("B", [LOSE_REPLY, DOWN]),  # the destination applies step 2 and dies before answering
    ],
)
async def test_shards_dying_around_each_step_move_the_money_once(shard: str, faults: list[str]) -> None:
    router, shards = _cluster()
    shards[shard].faults = list(faults)
    record = await _coordinator(router, MemoryTransferStore()).transfer("t-1", "alice", "40", "A", "B")
    assert record.state == COMPLETED and _money(shards) == (6000, 4000, 0)
    transfer_outs = [cmd for cmd in shards["A"].commands if isinstance(cmd, c.TransferOut)]
    assert len(transfer_outs) >= 1 and shards["A"].engine.state.transfers["t-1"].status == "completed"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.integers(1, 60),
            st.lists(st.sampled_from([DOWN, LOSE_REPLY]), max_size=3),
            st.lists(st.sampled_from([DOWN, LOSE_REPLY]), max_size=3),
            st.sampled_from((None, *CRASH_POINTS)),
        ),
        min_size=1,
        max_size=6,
    )
)
async def test_any_faults_conserve_money_and_never_transfer_twice(
    plan: list[tuple[str, int, list[str], list[str], str | None]],
) -> None:
    router, shards = _cluster()
    shards["B"].engine.apply(c.Deposit(account_id="alice", amount=D("100")))
    store = MemoryTransferStore()
    for number, (source, amount, source_faults, target_faults, crash_at) in enumerate(plan):
        target = "B" if source == "A" else "A"
        shards[source].faults = list(source_faults)
        shards[target].faults = list(target_faults)
        with contextlib.suppress(Crash):
            await _coordinator(router, store, crash_at).transfer(
                f"t-{number}", "alice", str(amount), source, target
            )
        a, b, in_transit = _money(shards)
        assert a + b + in_transit == 20000
    for shard in shards.values():
        shard.faults = []
    await _coordinator(router, store).recover()
    a, b, in_transit = _money(shards)
    assert in_transit == 0 and a + b == 20000
    expected = {"A": 10000, "B": 10000}
    for number, (source, amount, *_rest) in enumerate(plan):
        record = await store.get(f"t-{number}")
        assert record is not None and record.state in (COMPLETED, FAILED)
        if record.state == COMPLETED:
            expected[source] -= amount * 100
            expected["B" if source == "A" else "A"] += amount * 100
    assert (a, b) == (expected["A"], expected["B"])


async def test_recovery_goes_on_past_a_shard_without_a_leader() -> None:
    shard_map = ShardMap.parse("A=X;B=Y;C=Z")
    shards = {name: FakeShard(name) for name in shard_map.names}
    for shard in shards.values():
        shard.engine.apply(c.OpenAccount(account_id="alice", owner="u1"))
        shard.engine.apply(c.Deposit(account_id="alice", amount=D("100")))
    clock = FakeTime()
    router = ShardRouter(shard_map, shards, retry_seconds=2.0, monotonic=clock.monotonic, sleep=clock.sleep)
    store = MemoryTransferStore()

    def crashing(point: str, _record: TransferRecord) -> None:
        if point == "out_applied":
            raise Crash(point)

    for transfer_id, source, target in (("t-1", "A", "B"), ("t-2", "B", "C")):
        with pytest.raises(Crash):
            await TransferCoordinator(router.submit_to, store, shard_map.names, checkpoint=crashing).transfer(
                transfer_id, "alice", "10", source, target
            )
    shards["A"].faults = [DOWN] * 1000  # A has no leader: t-1 cannot go on now
    finished = await TransferCoordinator(router.submit_to, store, shard_map.names).recover()
    assert [(r.transfer_id, r.state) for r in finished] == [("t-2", COMPLETED)]
    stalled = await store.get("t-1")
    assert stalled is not None and stalled.state == REQUESTED
    shards["A"].faults = []
    assert [
        r.state for r in await TransferCoordinator(router.submit_to, store, shard_map.names).recover()
    ] == [COMPLETED]
    totals = [shards[name].engine.accounts["alice"].balances["USD"].total for name in ("A", "B", "C")]
    assert totals == [9000, 10000, 11000]
