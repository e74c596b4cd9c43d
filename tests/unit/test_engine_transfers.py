"""Cross-shard transfers in the engine (engine/transfers.py): exact balances, idempotency by transfer id,
refusals kept in the destination, and snapshots."""

from __future__ import annotations

from decimal import Decimal as D

from tests.engine_support import balance, engine_with, expect_no_rejection, one, place, spot_spec
from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import AccountKind, TransferStatus
from tradehall.domain.errors import Code
from tradehall.domain.tiers import TierSpec
from tradehall.engine import Engine
from tradehall.engine.ledger import SYSTEM_TRANSFERS


def _out(transfer_id: str = "t1", amount: str = "40", account: str = "alice", **kw: object) -> c.TransferOut:
    return c.TransferOut(transfer_id=transfer_id, account_id=account, amount=D(amount), to_shard="b", **kw)  # type: ignore[arg-type]


def _in(transfer_id: str = "t1", amount: str = "40", account: str = "alice", **kw: object) -> c.TransferIn:
    fields: dict[str, object] = {"currency": "USD", "from_shard": "a", **kw}
    return c.TransferIn(transfer_id=transfer_id, account_id=account, amount=D(amount), **fields)  # type: ignore[arg-type]


def _update(events: list[ev.AnyEvent]) -> ev.TransferUpdated:
    return one(events, ev.TransferUpdated)


def _rejected(events: list[ev.AnyEvent]) -> ev.CommandRejected:
    return one(events, ev.CommandRejected)


def _system(engine: Engine, currency: str = "USD") -> int:
    account = engine.accounts.get(SYSTEM_TRANSFERS)  # opened on a shard's first transfer
    return 0 if account is None else balance(engine, SYSTEM_TRANSFERS, currency)[0]


def test_transfer_out_moves_available_balance_into_transit_once() -> None:
    source = engine_with(accounts={"alice": {"USD": "100"}})
    events = source.apply(_out())
    update = _update(events)
    assert (update.status, update.amount, update.side, update.peer_shard, update.repeated) == (
        TransferStatus.IN_TRANSIT,
        4000,
        "out",
        "b",
        False,
    )
    assert [(e.account_id, e.delta, e.reason) for e in events if isinstance(e, ev.BalanceChanged)] == [
        ("alice", -4000, "TransferOut"),
        (SYSTEM_TRANSFERS, 4000, "TransferOut"),
    ]
    assert balance(source, "alice") == (6000, 0)
    # the same transfer id again: nothing moves, the first result is answered
    again = source.apply(_out())
    assert [type(e) for e in again] == [ev.TransferUpdated]
    assert _update(again).repeated and _update(again).status is TransferStatus.IN_TRANSIT
    assert balance(source, "alice") == (6000, 0)
    assert _system(source) == 4000
    assert source.ledger.totals() == {"USD": 0}


def test_transfer_out_refusals_change_nothing() -> None:
    source = engine_with(spot_spec(), accounts={"alice": {"USD": "100"}, "bob": {"USD": "1"}})
    expect_no_rejection(place(source, "alice", "BTC-USD", "buy", "1", "90"))  # holds 90.00
    before = source.state_hash()
    refusals = [
        (_out(amount="9.83"), Code.INSUFFICIENT_BALANCE),
        (_out(amount="0"), Code.INVALID_REQUEST),
        (_out(amount="1.001"), Code.INVALID_ORDER),
        (_out(account="nobody"), Code.NOT_FOUND),
        (_out(account="system:fees"), Code.NOT_FOUND),
        (_out(transfer_id=""), Code.INVALID_REQUEST),
        (_out(transfer_id="x" * 65), Code.INVALID_REQUEST),
        (
            c.TransferOut(transfer_id="t9", account_id="alice", amount=D("1"), to_shard=""),
            Code.INVALID_REQUEST,
        ),
    ]
    for command, code in refusals:
        assert _rejected(source.apply(command)).code is code, command
    assert source.state_hash() == before
    expect_no_rejection(source.apply(_out(amount="9.82")))  # exactly what is available (90 + fee held)
    assert balance(source, "alice") == (9018, 9018)


def test_a_transfer_id_reused_with_other_terms_is_a_conflict() -> None:
    source = engine_with(accounts={"alice": {"USD": "100"}, "bob": {"USD": "100"}})
    expect_no_rejection(source.apply(_out()))
    for other in (_out(amount="41"), _out(account="bob"), _out(currency="EUR")):
        assert _rejected(source.apply(other)).code is Code.CONFLICT
    assert _rejected(source.apply(_in())).code is Code.CONFLICT  # the same id as an incoming transfer
    assert balance(source, "alice") == (6000, 0) and balance(source, "bob") == (10000, 0)


def test_transfer_in_credits_once_and_completion_closes_the_source_record() -> None:
    source = engine_with(accounts={"alice": {"USD": "100"}})
    target = engine_with(accounts={"alice": {"USD": "0.01"}})
    expect_no_rejection(source.apply(_out(amount="25.50")))
    credited = target.apply(_in(amount="25.50"))
    assert _update(credited).status is TransferStatus.CREDITED and _update(credited).side == "in"
    assert balance(target, "alice") == (2551, 0)
    assert _system(target) == -2550
    repeat = target.apply(_in(amount="25.50"))
    assert _update(repeat).repeated and balance(target, "alice") == (2551, 0)
    assert _rejected(target.apply(_in(amount="25.49"))).code is Code.CONFLICT
    done = source.apply(c.CompleteTransfer(transfer_id="t1"))
    assert _update(done).status is TransferStatus.COMPLETED
    assert not [e for e in done if isinstance(e, ev.BalanceChanged)]  # nothing moves in the source
    assert _update(source.apply(c.CompleteTransfer(transfer_id="t1"))).repeated
    assert _rejected(source.apply(c.RefundTransfer(transfer_id="t1"))).code is Code.CONFLICT
    # across both shards: in transit nothing, every balance accounted for
    assert _system(source) + _system(target) == 0
    assert balance(source, "alice")[0] + balance(target, "alice")[0] == 10001


def test_a_refused_transfer_in_is_kept_and_the_source_refunds() -> None:
    source = engine_with(accounts={"alice": {"USD": "100"}})
    target = Engine()  # no account alice here
    expect_no_rejection(source.apply(_out()))
    refused = _update(target.apply(_in()))
    assert refused.status is TransferStatus.REFUSED
    assert refused.reason == "account alice not found in this shard"
    # the account appears later: the refusal stands, so a refund in the source can never meet a credit
    expect_no_rejection(target.apply(c.OpenAccount(account_id="alice", owner="alice")))
    again = _update(target.apply(_in()))
    assert again.repeated and again.status is TransferStatus.REFUSED
    assert balance(target, "alice") == (0, 0) and _system(target) == 0
    refund = source.apply(c.RefundTransfer(transfer_id="t1", reason=refused.reason))
    update = _update(refund)
    assert (update.status, update.reason) == (TransferStatus.REFUNDED, refused.reason)
    assert balance(source, "alice") == (10000, 0) and _system(source) == 0
    assert _update(source.apply(c.RefundTransfer(transfer_id="t1"))).repeated
    assert balance(source, "alice") == (10000, 0)
    assert _rejected(source.apply(c.CompleteTransfer(transfer_id="t1"))).code is Code.CONFLICT


def test_transfer_in_refuses_assessments_and_amounts_the_currency_cannot_hold() -> None:
    target = engine_with(accounts={"alice": {"USD": "1"}})
    tier = TierSpec(name="t", starting_balance=D("1000"), currency="USD")
    expect_no_rejection(target.apply(c.Configure(tiers={"t": tier})))
    expect_no_rejection(
        target.apply(c.OpenAccount(account_id="eva", owner="eva", kind=AccountKind.ASSESSMENT, tier="t"))
    )
    assert _update(target.apply(_in("t1", account="eva"))).reason == (
        "an assessment account's balance does not move between shards"
    )
    assert _update(target.apply(_in("t2", amount="0.001"))).status is TransferStatus.REFUSED
    assert _update(target.apply(_in("t2", amount="0.001"))).repeated
    assert balance(target, "alice") == (100, 0) and _system(target) == 0


def test_complete_or_refund_of_an_unknown_transfer_is_not_found() -> None:
    engine = engine_with(accounts={"alice": {"USD": "100"}})
    expect_no_rejection(engine.apply(_in("incoming")))
    for command in (c.CompleteTransfer(transfer_id="nope"), c.RefundTransfer(transfer_id="incoming")):
        assert _rejected(engine.apply(command)).code is Code.NOT_FOUND


def test_transfers_survive_a_snapshot_and_count_in_the_state_hash() -> None:
    source = engine_with(accounts={"alice": {"USD": "100"}})
    plain = source.state_hash()
    expect_no_rejection(source.apply(_out("t1", "10")))
    expect_no_rejection(source.apply(_out("t2", "20")))
    expect_no_rejection(source.apply(c.RefundTransfer(transfer_id="t2", reason="gone")))
    assert source.state_hash() != plain
    restored = Engine.restore(source.snapshot())
    assert restored.state_hash() == source.state_hash()
    assert _update(restored.apply(_out("t1", "10"))).repeated
    assert _update(restored.apply(c.RefundTransfer(transfer_id="t2"))).reason == "gone"
    assert balance(restored, "alice") == (9000, 0)
