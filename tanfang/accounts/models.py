"""Users, each with one role and one node of the administrative tree."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    CITY_ADMIN = "city_admin", _("City administrator")
    DISTRICT_SUPERVISOR = "district_supervisor", _("District supervisor")
    SUBDISTRICT_STAFF = "subdistrict_staff", _("Subdistrict staff")
    COMMUNITY_WORKER = "community_worker", _("Community worker")
    VISITOR = "visitor", _("Visitor")
    DATA_PARTNER = "data_partner", _("Data partner")
    AUDITOR = "auditor", _("Auditor")


class User(AbstractUser):
    """A person who signs in. Superusers exist only for installation; they get no scope."""

    role = models.CharField(_("role"), max_length=24, choices=Role.choices)
    area = models.ForeignKey(
        "areas.Area",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        verbose_name=_("area"),
    )
    phone = models.CharField(_("phone"), max_length=20, blank=True)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.get_full_name() or self.username
