"""The demo's users: one or more of every role, at sensible places of the tree.

They share one published password: the demo city holds no real person, and its accounts are
printed on the console and in the README.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.db.models import Count

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area, AreaLevel, CommunityKind, SubdistrictKind
from tanfang.demo import names
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment

DEMO_PASSWORD = "tanfang-demo"
DONGCHENG = "110101"
ACCOUNT_ORDER: tuple[str, ...] = (
    "admin",
    "dongcheng",
    "fangshan",
    "street",
    "town",
    "community",
    "village",
    "visitor",
    "volunteer",
    "partner",
    "auditor",
)
FANGSHAN = "110111"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    username: str
    password: str
    role: str
    area_code: str
    area_name: str

    @property
    def role_label(self) -> str:
        return str(Role(self.role).label)


def _pick(parent: Area, level: str, *, kind: dict[str, str]) -> Area:
    """The child of ``parent`` at ``level`` (of the given kind) holding the most elders."""
    candidates = list(Area.objects.filter(**{parent.level: parent, "level": level}, **kind))
    if not candidates:
        candidates = list(Area.objects.filter(**{parent.level: parent, "level": level}))
    if not candidates:
        raise RuntimeError(f"no {level} under {parent.code} for a demo user")
    counts = {
        row[f"{level}_id"]: row["n"]
        for row in Elder.objects.filter(**{f"{level}_id__in": [c.pk for c in candidates]})
        .values(f"{level}_id")
        .annotate(n=Count("id"))
    }
    return min(candidates, key=lambda a: (-counts.get(a.pk, 0), a.code))


def demo_accounts_create(*, seed: int, today: dt.date) -> list[DemoAccount]:
    """Create the demo users and the visitors' assignments; return the accounts to print."""
    city = Area.objects.get(code="110000")
    dongcheng = Area.objects.get(code=DONGCHENG)
    fangshan = Area.objects.get(code=FANGSHAN)
    street = _pick(
        dongcheng, AreaLevel.SUBDISTRICT, kind={"subdistrict_kind": SubdistrictKind.STREET}
    )
    community = _pick(street, AreaLevel.COMMUNITY, kind={})
    town = _pick(fangshan, AreaLevel.SUBDISTRICT, kind={"subdistrict_kind": SubdistrictKind.TOWN})
    village = _pick(town, AreaLevel.COMMUNITY, kind={"community_kind": CommunityKind.VILLAGERS})
    plan: list[tuple[str, str, Area]] = [
        ("admin", Role.CITY_ADMIN, city),
        ("dongcheng", Role.DISTRICT_SUPERVISOR, dongcheng),
        ("fangshan", Role.DISTRICT_SUPERVISOR, fangshan),
        ("street", Role.SUBDISTRICT_STAFF, street),
        ("town", Role.SUBDISTRICT_STAFF, town),
        ("community", Role.COMMUNITY_WORKER, community),
        ("village", Role.COMMUNITY_WORKER, village),
        ("visitor", Role.VISITOR, community),
        ("volunteer", Role.VISITOR, village),
        ("partner", Role.DATA_PARTNER, city),
        ("auditor", Role.AUDITOR, city),
    ]
    rng = random.Random(f"tanfang-demo-accounts:{seed}")
    password = make_password(DEMO_PASSWORD)  # hashed once: the hashing is deliberately slow
    users: dict[str, User] = {}
    for username, role, area in plan:
        user = User.objects.filter(username=username).first()
        if user is None:
            gender_female = rng.random() < 0.6
            given = names.child_given_name(rng, "female" if gender_female else "male")
            user = User(
                username=username,
                role=role,
                area=area,
                password=password,
                last_name=names.surname(rng),
                first_name=given,
            )
            user.save()
        users[username] = user
    _assign(users["visitor"], users["community"], community, 15, today)
    _assign(users["volunteer"], users["village"], village, 8, today)
    _neighbours(users["visitor"], rng)
    demo_messaging_data()
    return [
        DemoAccount(username, DEMO_PASSWORD, role, area.code, area.name)
        for username, role, area in plan
    ]


def _neighbours(visitor: User, rng: random.Random) -> None:
    """A neighbour on the contact list of each of the visitor's elders, after the first
    contact (emergencies call and tell the whole list: docs/emergencies.md)."""
    from tanfang.core import crypto
    from tanfang.notifications.models import FamilyContact
    from tanfang.registry.identity import mask_phone

    elders = VisitorAssignment.objects.filter(visitor=visitor).values_list("elder_id", flat=True)
    if FamilyContact.objects.filter(elder_id__in=elders).exists():
        return
    rows = []
    for elder_id in sorted(elders):
        phone = f"1370000{rng.randrange(10_000):04d}"  # in the demo's block (shapes.py)
        rows.append(
            FamilyContact(
                elder_id=elder_id,
                name=names.surname(rng) + names.child_given_name(rng, "female"),
                relation="邻居",
                phone_cipher=crypto.encrypt(phone),
                phone_masked=mask_phone(phone),
                created_by=visitor,
            )
        )
    FamilyContact.objects.bulk_create(rows)


DEMO_USER_PHONES = {"visitor": "13900000101", "community": "13900000102"}  # demo block
EMAIL_CONTACTS = 5


def demo_messaging_data() -> None:
    """What the notification flows need, idempotently: a synthetic phone for ``visitor`` and
    ``community``, a WeCom group for their community (its key is the one the demo's WeCom
    sink is started with) and e-mail addresses (``@example.cn``) on a few of the visitor's
    elders' family contacts."""
    from tanfang.core import crypto
    from tanfang.notifications.models import FamilyContact, WeComGroup
    from tanfang.notifications.recipients import mask_email
    from tanfang.notifications.sinks.wecom_server import DEMO_WECOM_KEY

    for username, phone in DEMO_USER_PHONES.items():
        User.objects.filter(username=username, phone="").update(phone=phone)
    community = User.objects.filter(username="community").select_related("area").first()
    area = community.area if community is not None else None
    if area is not None and not WeComGroup.objects.filter(area=area).exists():
        WeComGroup.objects.create(
            area=area, name=f"{area.name}工作群"[:80], key_cipher=crypto.encrypt(DEMO_WECOM_KEY)
        )
    visitor = User.objects.filter(username="visitor").first()
    if visitor is None:
        return
    elders = VisitorAssignment.objects.filter(visitor=visitor).values_list("elder_id", flat=True)
    contacts = FamilyContact.objects.filter(elder_id__in=elders)
    if contacts.exclude(email_cipher="").exists():
        return
    for contact in contacts.order_by("elder_id", "id")[:EMAIL_CONTACTS]:
        address = f"family{contact.elder_id}@example.cn"  # synthetic
        contact.email_cipher = crypto.encrypt(address)
        contact.email_masked = mask_email(address)
        contact.save(update_fields=["email_cipher", "email_masked"])


def _assign(visitor: User, by: User, community: Area, count: int, today: dt.date) -> None:
    if VisitorAssignment.objects.filter(visitor=visitor).exists():
        return
    elders = list(
        Elder.objects.filter(community=community, life_status=LifeStatus.ACTIVE)
        .order_by("-focus", "id")
        .values_list("id", flat=True)[:count]
    )
    VisitorAssignment.objects.bulk_create(
        [
            VisitorAssignment(
                elder_id=elder_id,
                visitor=visitor,
                starts_on=today - dt.timedelta(days=60),
                assigned_by=by,
            )
            for elder_id in elders
        ]
    )
