"""Settings for the test suite: the real settings, with fixed throw-away keys.

A real deployment sets its own keys (``tanfang keys``); ``DATABASE_URL`` chooses SQLite or
PostgreSQL exactly as in production.
"""

import os
import tempfile

os.environ.setdefault("TANFANG_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("TANFANG_FIELD_KEYS", "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=")
os.environ.setdefault("TANFANG_BLIND_INDEX_KEY", "test-blind-index-key")
os.environ.setdefault("TANFANG_DATA_DIR", tempfile.mkdtemp(prefix="tanfang-test-"))

from tanfang.settings import *  # noqa: F403
from tanfang.settings import STATIC_ROOT

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns (an error under -W error) when the static root does not exist.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
