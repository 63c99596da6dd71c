"""``tanfang partners``: data partners and their API tokens.

- ``add CODE --name NAME --kind KIND [--contact USERNAME] [--mapping FILE.json]``
- ``token CODE``: issue a new token (printed once; only its SHA-256 is kept; the previous
  token stops working); ``--revoke`` removes it.
- ``list``: the partners, their contact and whether they have a token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tanfang.accounts.models import User
from tanfang.monitoring.files import FileError
from tanfang.monitoring.models import DataPartner, PartnerKind
from tanfang.monitoring.partners import (
    PartnerError,
    partner_create,
    partner_token_issue,
    partner_token_revoke,
)


class Command(BaseCommand):
    help = "Register data partners and issue the tokens their systems push readings with."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="register a partner")
        add.add_argument("code")
        add.add_argument("--name", required=True)
        add.add_argument("--kind", required=True, choices=PartnerKind.values)
        add.add_argument("--contact", help="username of its contact (data partner role)")
        add.add_argument("--mapping", type=Path, help="column mapping, a JSON file")
        token = sub.add_parser("token", help="issue a new API token (shown once)")
        token.add_argument("code")
        token.add_argument("--revoke", action="store_true", help="remove the token")
        sub.add_parser("list", help="list the partners")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "_" + options["action"])(options)
        except (PartnerError, FileError) as exc:
            raise CommandError(str(exc)) from exc

    def _add(self, options: dict[str, Any]) -> None:
        contact = None
        if options["contact"]:
            contact = User.objects.filter(username=options["contact"]).first()
            if contact is None:
                raise CommandError(f"no user named {options['contact']!r}")
        mapping = None
        if options["mapping"]:
            try:
                mapping = json.loads(options["mapping"].read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CommandError(f"{options['mapping']}: {exc}") from exc
            if not isinstance(mapping, dict):
                raise CommandError(f"{options['mapping']}: the mapping must be a JSON object")
        partner = partner_create(
            code=options["code"],
            name=options["name"],
            kind=options["kind"],
            contact=contact,
            column_mapping=mapping,
        )
        self.stdout.write(f"partner {partner.code} registered")

    def _token(self, options: dict[str, Any]) -> None:
        partner = DataPartner.objects.select_related("contact").filter(code=options["code"]).first()
        if partner is None:
            raise CommandError(f"no partner {options['code']!r}")
        if options["revoke"]:
            partner_token_revoke(partner=partner)
            self.stdout.write("revoked")
            return
        self.stdout.write(partner_token_issue(partner=partner))

    def _list(self, options: dict[str, Any]) -> None:
        for partner in DataPartner.objects.select_related("contact").order_by("code"):
            contact = partner.contact.username if partner.contact else "-"
            token = f"{partner.token_prefix}…" if partner.token_hash else "no token"
            state = "" if partner.active else " (inactive)"
            self.stdout.write(f"{partner.code}\t{partner.name}\t{contact}\t{token}{state}")
