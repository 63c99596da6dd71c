"""The Redis backend: several ``tanfang worker`` processes on several machines.

Keys (``P`` is the prefix, ``TANFANG_WORKER_KEY_PREFIX``, default ``tanfang:``):

- ``P lock:JOB`` — the holder's claim token, ``SET NX PX lease``; renewed by the holder with
  a compare-and-set script, released with compare-and-delete: jobs never overlap, and a dead
  holder's lock expires after the lease so another worker takes the job over.
- ``P due:JOB`` — exists (with its expiry at the next due time) while the job is not due:
  set by the holder when it finishes, so each period runs once across all workers.
  Expiry is Redis's own clock: workers only compute "how long until the next period".
- ``P queue`` — queued jobs (JSON), a reliable queue: ``BLMOVE`` into ``P processing:W``
  (one list per worker), removed when done. A worker keeps ``P alive:W`` (expiring) while it
  runs; the reaper hands back the processing list of a worker whose ``alive`` key expired.
  ``P workers`` is the set of workers the reaper watches.
- ``P outbox-wake`` — the channel a wake-up is published on after a message is committed;
  every worker's outbox loop is subscribed, so an urgent message leaves at once.

The scripts touch keys built from the prefix inside Lua (the reaper), which is fine for one
Redis server or a primary with replicas, not for Redis Cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from typing import Any

import redis

from tanfang.workers.backends import Claim, Delivery, JobState, claim_token, payload
from tanfang.workers.jobs import Job

log = logging.getLogger("tanfang.workers")

# The lifetime of a worker's ``alive`` key: its queued jobs are handed back this long after
# it died (it is renewed three times per lifetime while the worker runs).
WORKER_LEASE = dt.timedelta(seconds=30)

_CLAIM = """
if ARGV[3] ~= '1' and redis.call('PTTL', KEYS[2]) > 0 then
  return {0, redis.call('PTTL', KEYS[2])}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
return {2, redis.call('PTTL', KEYS[1])}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
end
redis.call('DEL', KEYS[1])
return 1
"""

_REAP = """
local moved = 0
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'alive:' .. worker) == 0 then
    local processing = ARGV[1] .. 'processing:' .. worker
    while redis.call('LMOVE', processing, KEYS[2], 'RIGHT', 'RIGHT') do
      moved = moved + 1
    end
    redis.call('SREM', KEYS[1], worker)
  end
end
return moved
"""


def _ms(delta: dt.timedelta) -> int:
    return max(1, int(delta.total_seconds() * 1000))


class RedisBackend:
    kind = "redis"

    def __init__(
        self, url: str, *, prefix: str = "tanfang:", worker_lease: dt.timedelta | None = None
    ) -> None:
        self.prefix = prefix
        self.worker_lease = worker_lease or WORKER_LEASE
        self.heartbeat_seconds = min(5.0, self.worker_lease.total_seconds() / 3)
        self.client = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30
        )
        self._claim = self.client.register_script(_CLAIM)
        self._renew = self.client.register_script(_RENEW)
        self._finish = self.client.register_script(_FINISH)
        self._reap = self.client.register_script(_REAP)
        self._pubsub: Any = None
        self._interrupted = threading.Event()

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ----------------------------------------------------------------- periodic jobs

    def prepare(self, jobs: list[Job], *, now: dt.datetime) -> None:
        """A job never seen before is first due at the start of its next period."""
        for job in jobs:
            if job.schedule is None:
                continue
            due = job.schedule.next_after(now)
            self.client.set(self.key("due", job.name), due.isoformat(), px=_ms(due - now), nx=True)

    def claim(
        self, job: Job, *, worker: str, now: dt.datetime, force: bool = False
    ) -> Claim | dt.datetime:
        token = claim_token(worker)
        keys = [self.key("lock", job.name), self.key("due", job.name)]
        status, ms = self._claim(keys=keys, args=[token, _ms(job.lease), "1" if force else "0"])
        if status == 1:
            return Claim(job.name, token, forced=force)
        if status == 0:
            return now + dt.timedelta(milliseconds=int(ms))
        return now + min(dt.timedelta(milliseconds=max(int(ms), 0)), dt.timedelta(seconds=5))

    def renew(self, claim: Claim, job: Job, *, now: dt.datetime) -> bool:
        return bool(
            self._renew(keys=[self.key("lock", claim.job)], args=[claim.token, _ms(job.lease)])
        )

    def finish(self, claim: Claim, job: Job, *, next_run_at: dt.datetime | None) -> bool:
        until = 0
        if next_run_at is not None:
            until = int((next_run_at - dt.datetime.now(dt.UTC)).total_seconds() * 1000)
        keys = [self.key("lock", claim.job), self.key("due", claim.job)]
        marker = next_run_at.isoformat() if next_run_at else ""
        return bool(self._finish(keys=keys, args=[claim.token, max(until, 0), marker]))

    def states(self, jobs: list[Job]) -> dict[str, JobState]:
        now = dt.datetime.now(dt.UTC)
        pipe = self.client.pipeline(transaction=False)
        for job in jobs:
            pipe.get(self.key("due", job.name))
            pipe.get(self.key("lock", job.name))
            pipe.pttl(self.key("lock", job.name))
        answers = pipe.execute()
        out = {}
        for index, job in enumerate(jobs):
            due, holder, ttl = answers[3 * index : 3 * index + 3]
            out[job.name] = JobState(
                job.name,
                dt.datetime.fromisoformat(due) if due else None,
                (holder or "").rsplit("/", 1)[0],
                now + dt.timedelta(milliseconds=ttl) if holder and ttl > 0 else None,
            )
        return out

    # ----------------------------------------------------------------- queued jobs

    def enqueue(self, name: str, kwargs: dict[str, Any]) -> str:
        item = payload(name, kwargs)
        self.client.lpush(self.key("queue"), item)
        return str(json.loads(item)["id"])

    def dequeue(self, worker: str, *, timeout: float) -> Delivery | None:
        queue, processing = self.key("queue"), self.key("processing", worker)
        if timeout > 0:
            found = self.client.blmove(queue, processing, timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
        else:
            found = self.client.lmove(queue, processing, "RIGHT", "LEFT")
        if found is None:
            return None
        item = str(found)
        try:
            data = json.loads(item)
            return Delivery(str(data["id"]), str(data["name"]), dict(data["kwargs"]), raw=item)
        except (ValueError, KeyError, TypeError):
            log.error("queue: dropping an unreadable item %r", item[:200])
            self.client.lrem(processing, 1, item)
            return None

    def ack(self, worker: str, delivery: Delivery) -> None:
        self.client.lrem(self.key("processing", worker), 1, delivery.raw)

    def heartbeat(self, worker: str, *, now: dt.datetime) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(self.key("workers"), worker)
        pipe.set(self.key("alive", worker), now.isoformat(), px=_ms(self.worker_lease))
        pipe.execute()

    def reap(self, *, now: dt.datetime) -> int:
        """Hand the queued jobs of every worker whose ``alive`` key expired back to the queue."""
        moved = int(self._reap(keys=[self.key("workers"), self.key("queue")], args=[self.prefix]))
        if moved:
            log.warning("queue: %d jobs of a worker that stopped answering were re-queued", moved)
        return moved

    def leave(self, worker: str) -> None:
        """A clean exit: anything still in our hands goes back, and we are forgotten."""
        processing = self.key("processing", worker)
        while self.client.lmove(processing, self.key("queue"), "RIGHT", "RIGHT"):
            pass
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.key("alive", worker))
        pipe.srem(self.key("workers"), worker)
        pipe.execute()

    # ----------------------------------------------------------------- outbox wake-up

    def publish_wake(self) -> None:
        self.client.publish(self.key("outbox-wake"), "1")

    def _subscribe(self) -> Any:
        """Subscribe to the wake-up channel and wait for Redis to confirm it, so that no
        wake-up published after this returns is missed."""
        if self._pubsub is None:
            pubsub = self.client.pubsub()
            pubsub.subscribe(self.key("outbox-wake"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                message = pubsub.get_message(timeout=1)
                if message is not None and message["type"] == "subscribe":
                    break
            self._pubsub = pubsub
        return self._pubsub

    def wait_wake(self, timeout: float) -> bool:
        """True when a wake-up came within ``timeout`` seconds (several count as one)."""
        pubsub = self._subscribe()
        deadline = time.monotonic() + timeout
        while not self._interrupted.is_set():
            left = deadline - time.monotonic()
            message = pubsub.get_message(timeout=max(left, 0.0))
            if message is not None and message["type"] == "message":
                while pubsub.get_message(timeout=0) is not None:
                    pass
                return True
            if left <= 0:
                break
        return False

    def interrupt(self) -> None:
        self._interrupted.set()

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None
        self.client.close()


_publisher: RedisBackend | None = None
_publisher_lock = threading.Lock()
_relaying = threading.local()


def relay_outbox_wake() -> None:
    """Wake this process's outbox after a wake-up came from Redis (without publishing it
    back, which would wake every worker again and again)."""
    from tanfang.notifications.wake import outbox_wake

    _relaying.active = True
    try:
        outbox_wake()
    finally:
        _relaying.active = False


def publish_outbox_wake() -> None:
    """The ``on_outbox_wake`` listener of every process when Redis is configured (web
    processes, ``tanfang mqtt``, workers): tell every worker's outbox loop to look now."""
    global _publisher
    from django.conf import settings

    if getattr(_relaying, "active", False):
        return

    with _publisher_lock:
        if _publisher is None:
            _publisher = RedisBackend(settings.REDIS_URL, prefix=settings.WORKER_KEY_PREFIX)
    _publisher.publish_wake()
