"""Collateral between the shards of a cluster (admin): start, resume and read cross-shard transfers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from tradehall.api.errors import ApiError, not_found
from tradehall.api.gateway import AdminDep, GatewayDep
from tradehall.api.routes.common import ERRORS, json_response
from tradehall.api.schemas import Response as ResponseModel
from tradehall.api.schemas import TransferRequest
from tradehall.domain.errors import Code
from tradehall.service.cluster.transfers import TransferCoordinator, TransferRecord

router = APIRouter(tags=["cluster"], responses=ERRORS)


class TransferOut(ResponseModel):
    transfer_id: str
    account_id: str
    amount: str
    currency: str
    from_shard: str
    to_shard: str
    state: str
    reason: str
    error: str


def _out(record: TransferRecord) -> dict[str, Any]:
    return {
        "transfer_id": record.transfer_id,
        "account_id": record.account_id,
        "amount": record.amount,
        "currency": record.currency,
        "from_shard": record.from_shard,
        "to_shard": record.to_shard,
        "state": record.state,
        "reason": record.reason,
        "error": record.error,
    }


def _coordinator(gateway: GatewayDep) -> TransferCoordinator:
    cluster = gateway.cluster
    if cluster is None or cluster.transfers is None:
        raise ApiError(
            Code.CONFLICT,
            "transfers move collateral between the shards of a cluster: this server is not configured "
            "for one (TRADEHALL_CLUSTER_SHARDS)",
        )
    return cluster.transfers


@router.post(
    "/admin/transfers",
    response_model=TransferOut,
    summary="Move an account's collateral to another shard (admin; a cluster only)",
    description="Debits `amount` (default currency: the account's) from the account's available "
    "balance in `from_shard` and credits it in `to_shard`, through both shards' logs, idempotent by "
    '`transfer_id` (docs/cluster.md, "Accounts across shards"). Answers the transfer when it has ended '
    "(`state` `completed`; `failed` when the source refused it, nothing moved, `reason` says why; "
    "`refunded` when the destination refused it) or, if a shard has no leader now, 503 `overloaded`: "
    "the transfer goes on by itself (or by sending the same request again). The same `transfer_id` "
    "with other terms is 409 `conflict`; a server that is not a cluster's gateway answers 409 too.",
)
async def create_transfer(body: TransferRequest, _admin: AdminDep, gateway: GatewayDep) -> Response:
    record = await _coordinator(gateway).transfer(
        body.transfer_id, body.account_id, body.amount, body.from_shard, body.to_shard, body.currency
    )
    return json_response(_out(record))


@router.get(
    "/admin/transfers/{transfer_id}",
    response_model=TransferOut,
    summary="A cross-shard transfer (admin; a cluster only)",
    description="The transfer as its coordinator recorded it: `state` `requested`, `sent` (in transit), "
    "`credited`, `refused`, then `completed`, `refunded` or `failed`; `error` is what keeps an "
    "unfinished one where it is (it is retried). 404 for an unknown id.",
)
async def get_transfer(transfer_id: str, _admin: AdminDep, gateway: GatewayDep) -> Response:
    record = await _coordinator(gateway).store.get(transfer_id)
    if record is None:
        raise not_found(f"transfer {transfer_id} not found")
    return json_response(_out(record))
