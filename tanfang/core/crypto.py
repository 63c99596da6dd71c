"""Encryption at rest and blind indexes for personal identifiers.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under the keys in
``TANFANG_FIELD_KEYS`` (the first encrypts, all decrypt, so keys can be rotated). To find a row
by an identifier without decrypting the table, a keyed HMAC-SHA256 of the normalised value is
stored beside it (a blind index), under a separate key.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])


@lru_cache(maxsize=1)
def _index_key() -> bytes:
    return hashlib.sha256(b"tanfang-blind-index:" + str(settings.BLIND_INDEX_KEY).encode()).digest()


def encrypt(value: str) -> str:
    if not value:
        return ""
    return _fernet().encrypt(value.encode()).decode("ascii")


def decrypt(token: str) -> str:
    if not token:
        return ""
    return _fernet().decrypt(token.encode("ascii")).decode()


def blind_index(kind: str, value: str) -> str:
    """Keyed hash of a normalised identifier; ``kind`` separates ID numbers from phones."""
    if not value:
        return ""
    message = f"{kind}:{value}".encode()
    return hmac.new(_index_key(), message, hashlib.sha256).hexdigest()


def new_keys() -> tuple[str, str]:
    """A fresh field key and blind-index key, for ``tanfang keys``."""
    import secrets

    return Fernet.generate_key().decode(), secrets.token_urlsafe(32)


def reset_caches() -> None:
    """Forget cached keys (tests that change settings)."""
    _fernet.cache_clear()
    _index_key.cache_clear()
