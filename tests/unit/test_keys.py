"""The API key format: recognisable prefix, 256-bit secrets, hash-only storage."""

from __future__ import annotations

import hashlib

from shared.api_keys import GRANTS, PREFIX, issue_token, parse_token, secret_matches


def test_issued_tokens_parse_back_and_only_their_hash_is_kept() -> None:
    issued = issue_token()
    assert issued.token.startswith(PREFIX)
    parsed = parse_token(issued.token)
    assert parsed is not None
    lookup, secret = parsed
    assert lookup == issued.lookup and len(lookup) == 12
    assert len(secret) >= 43  # 32 random bytes, URL-safe base64
    assert issued.secret_hash == hashlib.sha256(secret.encode()).digest()
    assert secret.encode() not in issued.secret_hash
    assert issue_token().token != issued.token
    rotated = issue_token(issued.lookup)
    assert rotated.lookup == issued.lookup and rotated.secret_hash != issued.secret_hash


def test_malformed_tokens_do_not_parse() -> None:
    good = issue_token().token
    while "_" in good[16:]:  # a secret with "_" would itself split the separator-less case
        good = issue_token().token
    lookup, secret = good[3:15], good[16:]
    for bad in (
        "",
        "tg_",
        good.replace("tg_", "sk_", 1),
        f"tg_{lookup}{secret}",  # no separator
        f"tg_{lookup[:-1]}_{secret}",  # short lookup
        f"tg_{lookup}_{secret[:20]}",  # short secret
        f"tg_{lookup}_{secret}é",
        good + "x" * 300,
    ):
        assert parse_token(bad) is None, bad


def test_a_secret_matches_its_hash_or_the_previous_one_only() -> None:
    now, before, other = issue_token(), issue_token(), issue_token()
    secret_now = now.token.split("_", 2)[2]
    secret_before = before.token.split("_", 2)[2]
    assert secret_matches(secret_now, now.secret_hash, None)
    assert secret_matches(secret_before, now.secret_hash, before.secret_hash)
    assert not secret_matches(secret_before, now.secret_hash, None)
    assert not secret_matches(other.token.split("_", 2)[2], now.secret_hash, before.secret_hash)


def test_grants_are_the_seeds() -> None:
    assert GRANTS["import"] == {"admin", "data_manager"}
    assert GRANTS["validate"] == {"admin", "data_manager", "viewer"}
    assert GRANTS["export"] == {"admin", "data_manager", "subscriber"}
    assert GRANTS["admin"] == {"admin"}
