"""Rotating the field key and the blind-index key keeps every identifier readable and findable."""

from __future__ import annotations

import io
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command

from tanfang.core import crypto
from tanfang.registry.models import Elder
from tanfang.registry.services import find_by_id_number
from tests.factories import lonely_widow, make_tree, parent_with_son

pytestmark = pytest.mark.django_db


def test_rotation_re_encrypts_under_the_new_key_and_reindexes(settings: Any) -> None:
    tree = make_tree()
    widow = lonely_widow(tree.communities[0], phone="13900003333")
    parent_with_son(tree.communities[1])
    number = crypto.decrypt(widow.id_number_cipher)
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    try:
        settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
        settings.BLIND_INDEX_KEY = "a-new-blind-index-key"
        crypto.reset_caches()
        assert not find_by_id_number(Elder.objects.all(), number).exists()
        out = io.StringIO()
        call_command("rotate_keys", "--reindex", stdout=out)
        assert "re-encrypted 2 elders and 1 first contacts" in out.getvalue()
        widow.refresh_from_db()
        assert Fernet(new_key.encode()).decrypt(widow.id_number_cipher.encode()).decode() == number
        assert list(find_by_id_number(Elder.objects.all(), number)) == [widow]
        settings.FIELD_ENCRYPTION_KEYS = [new_key]
        crypto.reset_caches()
        assert crypto.decrypt(widow.phone_cipher) == "13900003333"
        contact = Elder.objects.exclude(pk=widow.pk).get().first_contact
        assert contact is not None and crypto.decrypt(contact.phone_cipher) == "13800138000"
    finally:
        crypto.reset_caches()
