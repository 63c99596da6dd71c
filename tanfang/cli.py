"""The ``tanfang`` console command: every operator task is a subcommand.

``tanfang demo``, ``tanfang serve``, ``tanfang import elders FILE``, ``tanfang classify FILE``,
``tanfang keys``, ``tanfang worker`` (the background jobs, docs/workers.md), ``tanfang outbox``
(a dedicated outbox sender, docs/notifications.md) ... are Django management commands;
Django's own (``migrate``, ``createsuperuser``, ...) work too. ``tanfang keys`` needs no
configuration, so it is answered before Django starts.
"""

from __future__ import annotations

import os
import sys


def _print_keys() -> None:
    from tanfang.core.crypto import new_keys

    field_key, index_key = new_keys()
    print(f"TANFANG_FIELD_KEYS={field_key}")
    print(f"TANFANG_BLIND_INDEX_KEY={index_key}")


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv if argv is None else argv)
    if len(args) > 1 and args[1] == "keys":
        _print_keys()
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tanfang.settings")
    from django.core.management import execute_from_command_line

    args[0] = "tanfang"
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
