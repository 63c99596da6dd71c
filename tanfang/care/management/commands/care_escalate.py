"""``tanfang care_escalate [--on DATE]``: escalate overdue care actions (run daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tanfang.care.services import care_actions_escalate
from tanfang.core.cli_args import day_argument


class Command(BaseCommand):
    help = "Hand every care action still open after its due day to a community worker (once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--on", type=day_argument, default=None, help="today (YYYY-MM-DD)")

    def handle(self, *args: Any, **options: Any) -> None:
        count = care_actions_escalate(on=options["on"])
        self.stdout.write(f"{count} care actions escalated")
