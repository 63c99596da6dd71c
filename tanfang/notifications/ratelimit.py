"""Rate limits of the outbox: a provider's request rate per channel, and a guard against
flooding one recipient with messages that are not urgent.

Channel limit (``channel_limiter``): a provider allows so many requests a second (Alibaba's
SMS API: ``TANFANG_SMS_RATE``). Without Redis each worker process keeps an in-process token
bucket (the rate is then per process). With ``TANFANG_REDIS_URL`` every worker on every
machine shares one GCRA limiter in Redis (a Lua script keeps the "theoretical arrival time"
of the next request under one key), so the provider sees the configured rate in total.

Recipient guard (``RecipientGuard``): at most ``OUTBOX_RECIPIENT_PER_HOUR`` (default 10)
non-urgent messages to the same address on the same channel in a clock hour; the rest wait
for the next hour. Urgent messages are never held. Counted in Redis when configured (shared
by all workers), otherwise in the process. Addresses are kept only as a keyed hash.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings


class Limiter(Protocol):
    def wait_time(self) -> float:
        """Take one request if allowed now (0.0), else the seconds to wait before asking again."""
        ...


class Unlimited:
    def wait_time(self) -> float:
        return 0.0


class TokenBucket:
    """In-process limiter: ``rate`` requests a second, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.capacity = max(1.0, float(burst if burst is not None else rate))
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def wait_time(self) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return 0.0
            return (1.0 - self.tokens) / self.rate


# GCRA: KEYS[1] holds the theoretical arrival time (TAT) of the next request. A request is
# allowed when now >= TAT - burst; it then pushes TAT one interval further. Redis' own clock
# is used, so workers on machines with skewed clocks still share one rate.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if now < tat - burst then return tostring(tat - burst - now) end
tat = tat + interval
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil((tat - now + burst) * 1000) + 1000)
return '0'
"""


class RedisGCRA:
    """Limiter shared through Redis by every worker: ``rate`` requests a second in total."""

    def __init__(self, client: Any, key: str, rate: float, burst: float | None = None) -> None:
        self.client = client
        self.key = key
        self.interval = 1.0 / float(rate)
        # The burst tolerance in seconds: ``burst`` requests may go at once.
        self.burst = self.interval * max(0.0, (burst if burst is not None else rate) - 1)
        self.script = client.register_script(_GCRA)

    def wait_time(self) -> float:
        return float(self.script(keys=[self.key], args=[self.interval, self.burst]))


def acquire(limiter: Limiter, *, deadline: float | None = None) -> bool:
    """Wait until ``limiter`` allows one request; False if that would pass ``deadline``
    (a ``time.monotonic()`` value)."""
    while True:
        wait = limiter.wait_time()
        if wait <= 0:
            return True
        if deadline is not None and time.monotonic() + wait > deadline:
            return False
        time.sleep(min(wait, 1.0))


_clients: dict[str, Any] = {}
_limiters: dict[tuple[str, str, float], Limiter] = {}
_lock = threading.Lock()


def redis_client(url: str) -> Any:
    import redis

    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url)
        return _clients[url]


def key_prefix() -> str:
    return str(getattr(settings, "OUTBOX_REDIS_PREFIX", "") or "tanfang")


def channel_limiter(channel: str, rate: float) -> Limiter:
    """The limiter of ``channel`` at ``rate`` requests a second (0: unlimited), shared through
    Redis when ``REDIS_URL`` is set. One per channel, process and configuration."""
    if rate <= 0:
        return Unlimited()
    url = str(getattr(settings, "REDIS_URL", "") or "")
    ident = (url and f"{url}|{key_prefix()}", channel, float(rate))
    with _lock:
        found = _limiters.get(ident)
    if found is not None:
        return found
    limiter: Limiter = (
        RedisGCRA(redis_client(url), f"{key_prefix()}:outbox:rate:{channel}", rate)
        if url
        else TokenBucket(rate)
    )
    with _lock:
        return _limiters.setdefault(ident, limiter)


def _address_hash(channel: str, address: str) -> str:
    secret = str(getattr(settings, "SECRET_KEY", ""))
    return hashlib.blake2b(
        f"{channel}:{address}".encode(), key=secret.encode()[:64], digest_size=12
    ).hexdigest()


class RecipientGuard:
    """At most ``per_hour`` non-urgent messages per address and channel in a clock hour."""

    def __init__(self, per_hour: int | None = None, *, redis_url: str | None = None) -> None:
        self.per_hour = int(
            per_hour if per_hour is not None else getattr(settings, "OUTBOX_RECIPIENT_PER_HOUR", 10)
        )
        url = redis_url if redis_url is not None else str(getattr(settings, "REDIS_URL", ""))
        self.client = redis_client(url) if url else None
        self.counts: dict[str, int] = {}
        self.hour = -1
        self.lock = threading.Lock()

    def allow(self, channel: str, addresses: Sequence[str], *, at: float) -> list[bool]:
        """Count one message to each address at unix time ``at``; False for those over the
        limit (not counted: they will ask again next hour)."""
        if self.per_hour <= 0 or not addresses:
            return [True] * len(addresses)
        hour = int(at // 3600)
        keys = [_address_hash(channel, a) for a in addresses]
        if self.client is not None:
            names = [f"{key_prefix()}:outbox:rcpt:{hour}:{k}" for k in keys]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.incr(name)
                pipe.expire(name, 3700)
            counts = pipe.execute()[::2]
            over = [n for n, c in zip(names, counts, strict=True) if c > self.per_hour]
            if over:
                pipe = self.client.pipeline(transaction=False)
                for name in over:
                    pipe.decr(name)
                pipe.execute()
            return [c <= self.per_hour for c in counts]
        allowed = []
        with self.lock:
            if hour != self.hour:
                self.hour, self.counts = hour, {}
            for key in keys:
                count = self.counts.get(key, 0)
                if count < self.per_hour:
                    self.counts[key] = count + 1
                    allowed.append(True)
                else:
                    allowed.append(False)
        return allowed


_guards: dict[tuple[str, str, int], RecipientGuard] = {}


def recipient_guard() -> RecipientGuard:
    """The process's recipient guard for the current settings (its in-process counts must
    outlive one ``outbox_run``)."""
    url = str(getattr(settings, "REDIS_URL", "") or "")
    per_hour = int(getattr(settings, "OUTBOX_RECIPIENT_PER_HOUR", 10))
    ident = (url, key_prefix(), per_hour)
    with _lock:
        found = _guards.get(ident)
    if found is not None:
        return found
    guard = RecipientGuard(per_hour, redis_url=url)
    with _lock:
        return _guards.setdefault(ident, guard)


def next_hour(at: float) -> float:
    return (int(at // 3600) + 1) * 3600.0
