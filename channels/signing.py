"""The one HMAC scheme for both directions: shop events in (bot/web.py) and care messages out (webhook)."""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of `<timestamp>.<raw body>`; the timestamp inside stops replays."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
