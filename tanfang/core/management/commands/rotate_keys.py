"""Re-encrypt personal identifiers under the newest key, and optionally rebuild blind indexes.

Key rotation: put the new Fernet key first in ``TANFANG_FIELD_KEYS`` (keep the old ones after
it), run ``tanfang rotate_keys``, then drop the old keys. After changing
``TANFANG_BLIND_INDEX_KEY``, run ``tanfang rotate_keys --reindex``: searches by ID or phone
number find nothing until it has run. Batches commit one at a time; running it again is
harmless.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from tanfang.core import crypto
from tanfang.registry.models import Elder, FirstContact

BATCH = 2000


class Command(BaseCommand):
    help = "Re-encrypt identifiers under the newest key; --reindex rebuilds blind indexes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reindex", action="store_true", help="recompute blind indexes")

    def handle(self, *args: Any, reindex: bool = False, **options: Any) -> None:
        crypto.reset_caches()
        elders = self._rotate_elders(reindex=reindex)
        contacts = self._rotate_contacts()
        self.stdout.write(f"re-encrypted {elders} elders and {contacts} first contacts")

    def _rotate_elders(self, *, reindex: bool) -> int:
        done, last = 0, 0
        while True:
            with transaction.atomic():
                batch = list(
                    Elder.objects.filter(pk__gt=last)
                    .order_by("pk")
                    .only("pk", "id_number_cipher", "phone_cipher", "id_number_hash", "phone_hash")
                    .select_for_update()[:BATCH]
                )
                if not batch:
                    return done
                for elder in batch:
                    number = crypto.decrypt(elder.id_number_cipher)
                    phone = crypto.decrypt(elder.phone_cipher)
                    elder.id_number_cipher = crypto.encrypt(number)
                    elder.phone_cipher = crypto.encrypt(phone)
                    if reindex:
                        elder.id_number_hash = crypto.blind_index("id", number)
                        elder.phone_hash = crypto.blind_index("phone", phone)
                fields = ["id_number_cipher", "phone_cipher"]
                if reindex:
                    fields += ["id_number_hash", "phone_hash"]
                Elder.objects.bulk_update(batch, fields)
            done += len(batch)
            last = batch[-1].pk

    def _rotate_contacts(self) -> int:
        done, last = 0, 0
        while True:
            with transaction.atomic():
                batch = list(
                    FirstContact.objects.filter(pk__gt=last)
                    .order_by("pk")
                    .only("pk", "phone_cipher")
                    .select_for_update()[:BATCH]
                )
                if not batch:
                    return done
                for contact in batch:
                    contact.phone_cipher = crypto.encrypt(crypto.decrypt(contact.phone_cipher))
                FirstContact.objects.bulk_update(batch, ["phone_cipher"])
            done += len(batch)
            last = batch[-1].pk
