"""Credentials: HS256 tokens for agents and supervisors (PyJWT), API keys for ingest.

A token says who (`sub`), in which role, and until when (`exp`). Secrets and tokens are never
logged; errors say what is wrong with a credential without echoing it.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Literal

import jwt
import msgspec

Role = Literal["agent", "supervisor", "consumer"]
"""`consumer` tokens are issued with each engagement, for its consumer's socket (`sub` is the engagement)."""


class AuthError(Exception):
    """The credential is missing, malformed, forged or expired; the message says which."""


class Claims(msgspec.Struct, frozen=True):
    sub: str
    role: Role
    exp: float
    iat: float = 0.0


def issue(secret: str, subject: str, role: Role = "agent", ttl_s: float = 12 * 3600.0, now: float | None = None) -> str:
    issued = time.time() if now is None else now
    payload = {"sub": subject, "role": role, "iat": int(issued), "exp": int(issued + ttl_s)}
    return jwt.encode(payload, secret, algorithm="HS256")


def verify(secret: str, token: str, now: float | None = None) -> Claims:
    """Check signature and expiry; return the claims or raise `AuthError`."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            # times are checked below against `now` (the node's clock), not PyJWT's own
            options={"require": ["sub", "exp", "role"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {type(exc).__name__}") from None
    try:
        claims = msgspec.convert(payload, Claims)
    except msgspec.ValidationError as exc:
        raise AuthError(f"invalid token claims: {exc}") from None
    if claims.exp <= (time.time() if now is None else now):
        raise AuthError("token expired")
    return claims


def check_api_key(header: str | None, keys: Iterable[str]) -> bool:
    """True when `Authorization: Bearer <key>` names one of `keys` (compared in constant time)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return any(hmac.compare_digest(given.strip().encode(), key.encode()) for key in keys)
