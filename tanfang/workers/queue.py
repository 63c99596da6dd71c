"""Queued jobs: work asked for by code, run once by some worker (e.g. building a report).

    from tanfang.workers.queue import enqueue, task

    @task("reports.build")
    def report_build(*, report_id: int) -> str: ...

    enqueue("reports.build", report_id=report.pk)

A task is a function taking keyword arguments that JSON can carry; it is registered under a
name with ``@task`` in a module the worker imports (every installed app's ``tasks.py`` is
imported when the worker starts), or named by its path, ``"package.module:function"``.

On the database backend the job is a ``QueuedJob`` row inserted in the caller's transaction
(it exists exactly when the caller's change does); on Redis it is pushed after the caller's
transaction commits. Either way a job whose worker dies is run again by another one: a task
must be safe to run twice (at least once, never lost).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import transaction
from django.utils.module_loading import autodiscover_modules

from tanfang.workers.backends import Backend, backend_for_settings
from tanfang.workers.jobs import load

F = TypeVar("F", bound=Callable[..., Any])

TASKS: dict[str, Callable[..., Any]] = {}

_backend: Backend | None = None
_backend_lock = threading.Lock()


def task(name: str) -> Callable[[F], F]:
    """Register a function as the queued task ``name``."""

    def register(function: F) -> F:
        TASKS[name] = function
        return function

    return register


def task_function(name: str) -> Callable[..., Any]:
    if name in TASKS:
        return TASKS[name]
    if ":" in name:
        return load(name)
    raise LookupError(f"no queued task {name!r}")


def discover_tasks() -> None:
    autodiscover_modules("tasks")


def shared_backend() -> Backend:
    """This process's backend for enqueueing (workers have their own)."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = backend_for_settings()
        return _backend


def enqueue(name: str, /, **kwargs: Any) -> None:
    """Ask a worker to run task ``name`` with ``kwargs``. Raises ``TypeError`` at once when an
    argument cannot be carried as JSON, ``LookupError`` for an unknown task name."""
    json.dumps(kwargs)
    if name not in TASKS and ":" not in name:
        raise LookupError(f"no queued task {name!r}")
    backend = shared_backend()
    if backend.kind == "database":
        backend.enqueue(name, kwargs)
    else:
        transaction.on_commit(lambda: backend.enqueue(name, kwargs))
