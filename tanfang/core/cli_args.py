"""Argument types shared by the ``tanfang`` subcommands, so that every command says the same
thing about the same mistake and exits with status 2."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import CommandError


def day_argument(raw: str) -> dt.date:
    """``--on 2026-03-09``: a calendar day."""
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--on: {raw!r} is not a date YYYY-MM-DD", returncode=2) from None
