"""Writes that do not come from the engine: users, API keys (for the API) and candles (for market data).

Functions take a sync `Session` first and do not commit: `Store.call` wraps each call in a transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tradehall.domain.errors import Code, TradehallError
from tradehall.store.models import ApiKey, Candle, User, table_of
from tradehall.store.partitions import ensure_partitions_sync

USER_ROLES = ("trader", "admin")


def _now() -> datetime:
    return datetime.now(UTC)


# ---- users ----------------------------------------------------------------------------------------


def create_user(
    session: Session,
    username: str,
    password_hash: str,
    role: str = "trader",
    *,
    user_id: str | None = None,
    created_at: datetime | None = None,
) -> User:
    """A new user; the caller hashes the password. A taken username is `conflict`."""
    if role not in USER_ROLES:
        raise TradehallError(Code.INVALID_REQUEST, f"role must be trader or admin, got {role!r}")
    user = User(
        id=user_id or str(uuid.uuid4()),
        username=username,
        password_hash=password_hash,
        role=role,
        created_at=created_at or _now(),
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise TradehallError(Code.CONFLICT, f"username {username!r} is taken") from None
    return user


def find_user_by_username(session: Session, username: str) -> User | None:
    """Case-insensitive, by the database's `lower()` like the unique index `uq_users_username_lower`."""
    return session.scalars(select(User).where(func.lower(User.username) == func.lower(username))).first()


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def list_users(session: Session, limit: int, after: str | None = None) -> list[User] | None:
    """Users oldest first, keyset-paged after the user `after` (by `created_at`, then id, so the
    order is stable while users are added). None when `after` names no user."""
    query = select(User).order_by(User.created_at, User.id).limit(limit)
    if after is not None:
        last = session.get(User, after)
        if last is None:
            return None
        query = query.where(
            or_(
                User.created_at > last.created_at, and_(User.created_at == last.created_at, User.id > last.id)
            )
        )
    return list(session.scalars(query))


# ---- API keys -------------------------------------------------------------------------------------


def create_api_key(
    session: Session,
    user_id: str,
    key_hash: str,
    label: str | None = None,
    *,
    key_id: str | None = None,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
    scopes: Sequence[str] = ("read", "trade"),
    account_id: str | None = None,
) -> ApiKey:
    """Stores only the hash of the key (the caller shows the key once and hashes it)."""
    key = ApiKey(
        id=key_id or str(uuid.uuid4()),
        user_id=user_id,
        key_hash=key_hash,
        label=label,
        created_at=created_at or _now(),
        expires_at=expires_at,
        scopes=",".join(scopes),
        account_id=account_id,
    )
    try:
        with session.begin_nested():
            session.add(key)
    except IntegrityError:
        raise TradehallError(Code.CONFLICT, "api key already exists (or the user does not)") from None
    return key


def find_api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def get_api_key(session: Session, key_id: str) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_api_keys(session: Session, user_id: str) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
    return list(session.scalars(query))


def delete_api_key(session: Session, key_id: str, *, user_id: str | None = None) -> bool:
    """Deletes the key (only if it belongs to `user_id` when given); False when there was none."""
    statement = delete(ApiKey).where(ApiKey.id == key_id)
    if user_id is not None:
        statement = statement.where(ApiKey.user_id == user_id)
    result = session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


def touch_api_keys(session: Session, used: Mapping[str, datetime]) -> None:
    """Records keys' last use (`key id -> time`); a key deleted meanwhile is skipped, and an older time
    never replaces a newer one."""
    for key_id, at in used.items():
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at))
            .values(last_used_at=at)
        )


# ---- candles --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandleRow:
    market: str
    interval: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int = 0


_CANDLE_UPDATE = ("open", "high", "low", "close", "volume", "trades")


def upsert_candles(session: Session, rows: Iterable[CandleRow]) -> int:
    """Inserts candles or replaces the ones with the same (market, interval, start); returns the count.

    The caller owns the candle's values (a later update of the current candle replaces it whole).
    Any month works: on PostgreSQL the missing monthly partitions are created in the same transaction.
    """
    rows_list = list(rows)
    values: Sequence[dict[str, object]] = [asdict(row) for row in rows_list]
    if not values:
        return 0
    table = table_of(Candle)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Imported history can be of any month: create its partitions in this transaction first.
        ensure_partitions_sync(session.connection(), "candles", {row.start for row in rows_list})
        pg = postgresql.insert(table)
        statement = pg.on_conflict_do_update(
            index_elements=["market", "interval", "start"], set_={c: pg.excluded[c] for c in _CANDLE_UPDATE}
        )
        session.execute(statement, values)
    elif dialect == "sqlite":
        lite = sqlite.insert(table)
        upsert = lite.on_conflict_do_update(
            index_elements=["market", "interval", "start"], set_={c: lite.excluded[c] for c in _CANDLE_UPDATE}
        )
        session.execute(upsert, values)
    else:
        raise TradehallError(Code.INTERNAL, f"upsert_candles does not support {dialect}")
    return len(values)
