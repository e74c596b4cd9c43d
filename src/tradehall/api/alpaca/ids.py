"""Alpaca's ids are UUIDs (alpaca-py refuses anything else); tradehall's are not. The mapping, both ways.

Orders and executions carry their tradehall number inside the UUID, so no table is needed and the
mapping survives restarts: `74686c6c-KKKK-8000-VVVV-VVVVVVVVVVVV` is a version-8 (custom) UUID whose
first group spells "thll", whose second group `KKKK` says what kind of id it is and whose last 62 bits
(after the RFC 4122 variant bits) are the tradehall number. Assets and accounts have string ids: they map
to name-based (version 5) UUIDs in tradehall's own namespace, found back by looking them up.
"""

from __future__ import annotations

import uuid

ORDER = 1
EXECUTION = 2

_HIGH_PREFIX = 0x74686C6C  # "thll"
_VARIANT = 0b10 << 62
_VALUE_MASK = (1 << 62) - 1
NAMESPACE = uuid.UUID("5d1f3a0e-6c2b-5e8a-9f47-0b1c2d3e4f50")
"""tradehall's namespace for the name-based UUIDs of assets and accounts (fixed forever)."""


def _high(kind: int) -> int:
    return (_HIGH_PREFIX << 32) | (kind << 16) | 0x8000


def numbered_uuid(kind: int, number: int) -> str:
    """The UUID of tradehall number `number` (0 <= number < 2**62) of `kind`."""
    return str(uuid.UUID(int=(_high(kind) << 64) | _VARIANT | number))


def number_of(kind: int, text: str) -> int | None:
    """The tradehall number inside a UUID of `kind`, or None when `text` is not one."""
    if len(text) != 36:
        return None
    try:
        value = uuid.UUID(text).int
    except ValueError:
        return None
    if value >> 64 != _high(kind) or (value >> 62) & 0b11 != 0b10:
        return None
    return value & _VALUE_MASK


def order_uuid(order_id: int | str) -> str:
    return numbered_uuid(ORDER, int(order_id))


def order_number(text: str) -> int | None:
    return number_of(ORDER, text)


def execution_uuid(fill_id: int | str) -> str:
    """A fill's id (trade id x 2, + 1 on the taker's side) as Alpaca's `execution_id`."""
    return numbered_uuid(EXECUTION, int(fill_id))


def asset_uuid(symbol: str) -> str:
    """The asset id of tradehall market `symbol`."""
    return str(uuid.uuid5(NAMESPACE, "asset:" + symbol))


def account_uuid(account_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "account:" + account_id))
