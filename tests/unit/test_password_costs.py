"""The argon2 costs of new password hashes come from the settings (tests make them cheap)."""

from __future__ import annotations

from argon2 import PasswordHasher

from tradehall.api.auth import settings_password_hash
from tradehall.api.passwords import HashingPool, password_hasher, verify_password
from tradehall.service.settings import Settings


def test_the_default_costs_are_argon2s_own() -> None:
    settings = Settings()
    hasher = password_hasher(settings.password_hash_memory_kib, settings.password_hash_time_cost)
    default = PasswordHasher()
    assert (hasher.memory_cost, hasher.time_cost) == (default.memory_cost, default.time_cost) == (65536, 3)
    assert "$m=65536,t=3," in settings_password_hash(settings)("secret")


def test_a_hash_made_with_the_settings_costs_carries_them_and_checks() -> None:
    settings = Settings(password_hash_memory_kib=1024, password_hash_time_cost=1)
    hashed = settings_password_hash(settings)("secret")
    assert "$m=1024,t=1," in hashed
    assert verify_password(hashed, "secret") and not verify_password(hashed, "other")


async def test_the_pool_hashes_with_the_hasher_it_was_given() -> None:
    pool = HashingPool(1, 0, password_hasher(1024, 1))
    try:
        hashed = await pool.hash("secret")
        assert "$m=1024,t=1," in hashed
        assert await pool.verify(hashed, "secret") is True
    finally:
        pool.close()
