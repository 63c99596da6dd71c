"""The administrative tree: city → district → subdistrict → community → grid.

Codes follow GB/T 2260 (six digits for the city and its districts) and the 12-digit statistical
division codes below them (district + 3 digits subdistrict + 3 digits community). A grid is a
community code followed by three digits of its own (15 characters).
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class AreaLevel(models.TextChoices):
    CITY = "city", _("City")
    DISTRICT = "district", _("District")
    SUBDISTRICT = "subdistrict", _("Subdistrict")
    COMMUNITY = "community", _("Community")
    GRID = "grid", _("Grid")


LEVEL_ORDER: tuple[str, ...] = tuple(level.value for level in AreaLevel)


class SubdistrictKind(models.TextChoices):
    STREET = "street", _("Street")
    TOWN = "town", _("Town")
    TOWNSHIP = "township", _("Township")


class CommunityKind(models.TextChoices):
    RESIDENTS = "residents", _("Residents' committee")
    VILLAGERS = "villagers", _("Villagers' committee")


class AreaQuerySet(models.QuerySet["Area"]):
    def visible_to(self, user: object) -> AreaQuerySet:
        from tanfang.accounts.scope import areas_visible_to

        return areas_visible_to(user, self)


class Area(models.Model):
    """One node of the administrative tree.

    ``city``, ``district``, ``subdistrict`` and ``community`` point to the node's ancestors (and
    to itself at its own level), so a scope check is one indexed equality, never a tree walk.
    """

    code = models.CharField(_("code"), max_length=15, unique=True)
    name = models.CharField(_("name"), max_length=64)
    name_en = models.CharField(_("English name"), max_length=64, blank=True)
    level = models.CharField(_("level"), max_length=12, choices=AreaLevel.choices)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    subdistrict_kind = models.CharField(
        _("subdistrict kind"), max_length=10, choices=SubdistrictKind.choices, blank=True
    )
    community_kind = models.CharField(
        _("community kind"), max_length=10, choices=CommunityKind.choices, blank=True
    )
    city = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    district = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    subdistrict = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    community = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = AreaQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name = _("area")
        verbose_name_plural = _("areas")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def is_rural(self) -> bool:
        return self.community_kind == CommunityKind.VILLAGERS

    def ancestor_id(self, level: str) -> int | None:
        """The id of this node's ancestor at ``level`` (itself at its own level)."""
        if level == self.level:
            return self.pk
        return getattr(self, f"{level}_id", None)


_PREFIX_LENGTH = {
    AreaLevel.CITY: 2,
    AreaLevel.DISTRICT: 6,
    AreaLevel.SUBDISTRICT: 9,
    AreaLevel.COMMUNITY: 12,
    AreaLevel.GRID: 15,
}


def code_prefix(code: str, level: str) -> str:
    """The leading digits that every code under this node shares (``11`` for Beijing)."""
    return code[: _PREFIX_LENGTH[AreaLevel(level)]]
