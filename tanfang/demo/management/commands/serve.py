"""``tanfang serve``: collect the static files, then run the web application with gunicorn
(and, unless ``--no-worker``, the background jobs of ``tanfang worker`` beside it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tanfang.demo import serving


def add_serve_arguments(parser: CommandParser) -> None:
    parser.add_argument("--host", default=serving.DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=serving.DEFAULT_PORT, help="port")
    parser.add_argument(
        "--workers",
        type=int,
        default=serving.DEFAULT_WORKERS,
        help=f"gunicorn worker processes (each with {serving.THREADS} threads)",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run the background jobs in this process (run `tanfang worker` instead)",
    )


def check_serve_arguments(options: dict[str, Any]) -> None:
    if not 1 <= options["port"] <= 65535:
        raise CommandError("--port must be between 1 and 65535")
    if options["workers"] < 1:
        raise CommandError("--workers must be at least 1")


class Command(BaseCommand):
    help = "Collect static files and serve Tanfang with gunicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        add_serve_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        check_serve_arguments(options)
        serving.collect_static()
        self.stdout.write(
            f"Tanfang is at {serving.site_url(options['host'], options['port'])} (Ctrl+C stops it)"
        )
        serving.serve(
            host=options["host"],
            port=options["port"],
            workers=options["workers"],
            worker=not options["no_worker"],
        )
