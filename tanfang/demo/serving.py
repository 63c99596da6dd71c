"""Serving Tanfang with gunicorn (the WSGI server shipped as a dependency) and WhiteNoise."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from django.conf import settings
from django.core.management import call_command

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_WORKERS = 2
THREADS = 4


def site_url(host: str, port: int) -> str:
    """The address to open in a browser (a wildcard bind is reached through localhost)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def gunicorn_argv(*, host: str, port: int, workers: int) -> list[str]:
    bind = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "tanfang.wsgi:application",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--threads",
        str(THREADS),
        # Field phones pause between requests; a longer keep-alive spares them reconnects
        # (the gthread worker parks idle connections without holding a thread).
        "--keep-alive",
        "30",
        "--access-logfile",
        "-",
        # Several instances may run on one machine; none needs the shared control socket.
        "--no-control-socket",
    ]


def collect_static() -> None:
    call_command("collectstatic", interactive=False, verbosity=0)


def serve(*, host: str, port: int, workers: int, worker: bool = True) -> NoReturn:
    """Serve ``tanfang.wsgi`` with gunicorn (static files included: WhiteNoise serves what
    ``collectstatic`` gathered). With ``worker`` (the default) gunicorn runs as a child and
    this process runs the background jobs in threads (``tanfang.workers``, docs/workers.md);
    without, this process becomes gunicorn."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
    sys.stdout.flush()
    sys.stderr.flush()
    argv = gunicorn_argv(host=host, port=port, workers=workers)
    if worker:
        from tanfang.workers.runner import serve_beside

        sys.exit(serve_beside(argv))
    os.execv(argv[0], argv)
