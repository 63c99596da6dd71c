"""Every URL of the project × every role: personal data outside one's scope is refused.

The matrix is built from the URL patterns that exist when the test runs (``get_resolver``),
not from a list kept by hand, so a page, API endpoint or admin view added later is checked
the day it appears:

- every pattern is filled with objects *outside* the user's scope (an elder, first contact,
  area, user or district rule of the other district, or of another city for the city
  administrator; for a visitor also an elder of her own community not assigned to her), then
  requested with GET, POST and the API's other methods: anonymous users must be sent to a
  login page (or get 401/403 from the API), signed-in users must get 403 or 404 (the admin
  may also redirect to its index or login);
- patterns without object parameters are requested too, with an outside area in the query
  string: their answers must not contain any mark of the outside records (names, masked and
  full ID numbers, phones, codes);
- after the whole matrix, nothing outside has changed and no audit entry says that an
  outside record was viewed or revealed;
- positive checks: each role reaches what it should, with objects in its scope;
- every web view declares its access (``@requires``/``@public``), every API view declares
  ``required_capabilities`` behind ``DenyByDefault``.

A parameter this test cannot fill makes it fail with a message saying where to teach it,
rather than silently skipping the new pattern.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, path
from django.utils import timezone
from django.utils.regex_helper import normalize
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.access import declared_access, requires
from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import ROLE_CAPABILITIES, Capability
from tanfang.api.base import ScopedAPIView
from tanfang.api.permissions import ANY_ROLE, DenyByDefault, SignedInWithRole
from tanfang.areas.models import Area, AreaLevel, CommunityKind
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, ServiceEntry
from tanfang.core import crypto
from tanfang.emergencies.models import EmergencyCase
from tanfang.monitoring.alerts import Raise, alert_raise
from tanfang.monitoring.models import (
    Absence,
    Alert,
    DataPartner,
    Device,
    DistrictRules,
    IngestBatch,
    Meter,
    QuarantinedReading,
)
from tanfang.referrals.models import Referral
from tanfang.registry.models import (
    CategoryOverride,
    Elder,
    ElderChange,
    FirstContact,
    OtherCategoryRule,
    VisitorAssignment,
)
from tanfang.visits.models import (
    ServiceProvider,
    Visit,
    VisitorProfile,
    VisitRule,
    VisitSurge,
)
from tanfang.visits.services import VisitInput, visit_record
from tests.factories import (
    lonely_widow,
    make_area,
    make_tree,
    make_user,
    new_id_number,
    parent_with_son,
)

pytestmark = pytest.mark.django_db

# Pages anyone may open (everything else must refuse an anonymous visitor).
PUBLIC = {"login", "logout", "set-language", "admin:login", "admin:logout"}
# The family's confirm link (issue 5): its token is the key; an unknown one is a 404.
PUBLIC |= {"notification-confirm"}

# Roles in the matrix and where each works (all inside Dongcheng, except the city admin).
ROLES = (
    Role.CITY_ADMIN,
    Role.DISTRICT_SUPERVISOR,
    Role.SUBDISTRICT_STAFF,
    Role.COMMUNITY_WORKER,
    Role.VISITOR,
    Role.DATA_PARTNER,
    Role.AUDITOR,
)


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


# --------------------------------------------------------------------------- the world


@dataclass
class Bundle:
    """One set of records of a place: what the URL parameters are filled with."""

    elder: Elder
    first_contact: FirstContact
    community: Area
    district: Area
    user: User
    rule: OtherCategoryRule
    # A visit of the elder, and the care action it opened (set by ``_visit_with_action``).
    visit: Visit | None = None
    care_action: CareAction | None = None
    # The area's back-office records of visits (see ``_team``), by kind.
    team: dict[str, Any] = field(default_factory=dict)
    # The elder's meter, device, absence and a person alert; the district's monitoring
    # rules (see ``_monitoring``), by kind.
    monitoring: dict[str, Any] = field(default_factory=dict)
    # The elder's family contact and the district's notification rows (see ``_notifications``).
    notifications: dict[str, Any] = field(default_factory=dict)
    # Object kinds this bundle may stand for; a visitor's own-community bundle has only
    # the elder and what hangs on her (the community itself is hers).
    kinds: frozenset[str] = frozenset(
        {"elder", "first_contact", "area", "area_code", "user", "rule", "visit", "care_action"}
        | {"visit_rule", "surge", "provider", "service", "visitor_profile"}
        | {"alert", "meter", "device", "absence", "district_rules"}
        | {"emergency", "emergency_rules"}
        | {"referral", "referral_rules"}
        | {"family_contact", "message_template", "notification_rules", "wecom_group"}
    )

    def markers(self) -> list[str]:
        """Strings that must not appear in a page for a user outside this bundle."""
        elder = self.elder
        marks = [
            elder.name,
            elder.id_number_masked,
            crypto.decrypt(elder.id_number_cipher),
            self.first_contact.name,
        ]
        if elder.phone_cipher:
            marks += [crypto.decrypt(elder.phone_cipher), elder.phone_masked]
        if "family_contact" in self.notifications:
            marks.append(self.notifications["family_contact"].name)
        if "area" in self.kinds:
            marks += [self.community.name, self.community.code, self.user.username]
        return marks


@dataclass
class World:
    mine: Bundle  # Dongcheng, community 1: the visitor's assigned elder
    fangshan: Bundle  # outside for everyone below the city
    tianjin: Bundle  # outside for the Beijing city administrator
    unassigned: Bundle  # Dongcheng community 1, not assigned to the visitor
    users: dict[str, User] = field(default_factory=dict)

    def outside(self, user: User | None) -> list[Bundle]:
        if user is None:
            return [self.fangshan]
        if user.role == Role.CITY_ADMIN:
            return [self.tianjin]
        if user.role == Role.VISITOR:
            return [self.fangshan, self.unassigned]
        return [self.fangshan]


def _bundle(community: Area, name: str, place: str, phone: str, **kinds: Any) -> Bundle:
    elder = parent_with_son(
        community,
        name=name,
        id_number=new_id_number(dt.date(1950, 8, 8), "male", place),
        phone=phone,
    )
    district = Area.objects.get(pk=community.district_id)
    rule, _ = OtherCategoryRule.objects.get_or_create(
        district=district,
        code="matrix",
        defaults={
            "label": f"{name}规则",
            "conditions": {"all": [{"fact": "age", "op": ">=", "value": 100}]},
        },
    )
    first_contact = elder.first_contact
    assert first_contact is not None
    first_contact.name = f"{name}的联系人"
    first_contact.save(update_fields=["name"])
    return Bundle(
        elder=elder,
        first_contact=first_contact,
        community=community,
        district=district,
        user=make_user(
            Role.COMMUNITY_WORKER, community, username=f"worker-{community.code}-{elder.pk}"
        ),
        rule=rule,
        team=_team(community, elder),
        **kinds,
    )


TEAM_KINDS = ("visit_rule", "surge", "provider", "service", "visitor_profile")
NOTIFICATION_KINDS = ("family_contact", "message_template", "notification_rules", "wecom_group")


def _notifications(bundle: Bundle) -> None:
    """A family contact of the elder, the district's message template and notification rules,
    and a WeCom group of the community."""
    from tanfang.notifications.models import (
        FamilyContact,
        MessageTemplate,
        NotificationRules,
        WeComGroup,
    )

    elder = bundle.elder
    bundle.notifications = {
        "family_contact": FamilyContact.objects.create(
            elder=elder,
            name=f"{elder.name}的女儿",
            relation="child",
            phone_cipher=crypto.encrypt("13700001111"),
            phone_masked="137****1111",
        ),
        "message_template": MessageTemplate.objects.get_or_create(
            code="alert_raised", area=bundle.district, defaults={"text": "{elder}{what}"}
        )[0],
        "notification_rules": NotificationRules.objects.get_or_create(area=bundle.district)[0],
        "wecom_group": WeComGroup.objects.create(
            area=bundle.community, name=f"群{elder.pk}", key_cipher=crypto.encrypt("k")
        ),
    }


MONITORING_KINDS = ("alert", "meter", "device", "absence", "district_rules")
EMERGENCY_KINDS = ("emergency", "emergency_rules")


def _emergencies(bundle: Bundle) -> None:
    """An emergency case of the elder (a visitor's report, everyone told) and the district's
    emergency timers."""
    from tanfang.emergencies.models import EmergencyRules
    from tanfang.emergencies.services import emergency_open

    case, _ = emergency_open(
        elder=bundle.elder, trigger="visitor_report", summary=f"{bundle.elder.name}摔倒"
    )
    bundle.monitoring["emergency"] = case
    bundle.monitoring["emergency_rules"] = EmergencyRules.objects.get_or_create(
        area=bundle.district
    )[0]


REFERRAL_KINDS = ("referral", "referral_rules")


def _referrals(bundle: Bundle) -> None:
    """A need of the elder referred to her subdistrict, and the district's referral rules."""
    from tanfang.referrals.models import ReferralRules
    from tanfang.referrals.services import referral_open

    bundle.monitoring["referral"] = referral_open(
        key=f"matrix:{bundle.elder.pk}",
        elder=bundle.elder,
        need="daily_life_care",
        route_reason="extremely_poor",
        source="manual",
    )[0]
    rules, _ = ReferralRules.objects.get_or_create(area=bundle.district)
    bundle.monitoring["referral_rules"] = rules


def _monitoring(bundle: Bundle, partner_contact: User | None) -> None:
    """A water meter and an SOS button in the elder's home, a past absence, a person alert
    on the meter and a technical one (its data partner's contact is ``partner_contact``),
    and the district's monitoring rules."""
    elder = bundle.elder
    partner = DataPartner.objects.create(
        code=f"water-{elder.pk}",
        name=f"水务{elder.pk}",
        kind="water_utility",
        contact=partner_contact,
    )
    meter = Meter.objects.create(
        meter_id=f"M-{elder.pk}",
        partner=partner,
        elder=elder,
        utility="water",
        register="cumulative",
        unit="L",
    )
    device = Device.objects.create(
        device_id=f"D-{elder.pk}", partner=partner, elder=elder, kind="sos"
    )
    absence = Absence.objects.create(
        elder=elder, reason="away", starts_on=dt.date(2026, 1, 1), ends_on=dt.date(2026, 1, 9)
    )
    now = timezone.now()

    def raised(kind: str, rule: str) -> Alert:
        alert, _ = alert_raise(
            Raise(
                key=f"{meter.meter_id}:{rule}:{now.isoformat()}",
                kind=kind,
                rule=rule,
                severity="warning",
                started_at=now - dt.timedelta(hours=9),
                detected_at=now,
                evidence={"matrix": True},
                meter=meter,
            ),
            now=now,
        )
        assert alert is not None
        return alert

    rules, _ = DistrictRules.objects.get_or_create(area=bundle.district)
    # A delivery of the partner with a reading of the elder's meter set aside: the batches'
    # pages belong to no area (``city_policy``) and must show no mark of the elder.
    batch = IngestBatch.objects.create(
        partner=partner,
        source="file",
        name=f"water-{elder.pk}.csv",
        received_at=now,
        rows=2,
        stored=1,
        quarantined=1,
        reasons={"bad_value": 1},
    )
    QuarantinedReading.objects.create(
        batch=batch,
        row=3,
        meter_id=meter.meter_id,
        ts="2026-01-01T08:00:00+08:00",
        value="x",
        reason="bad_value",
    )
    bundle.monitoring = {
        "alert": raised("missed_routine", "routine_missed"),
        "technical_alert": raised("data_silence", "silence"),
        "meter": meter,
        "device": device,
        "absence": absence,
        "district_rules": rules,
        "batch": batch,
    }


def _team(community: Area, elder: Elder) -> dict[str, Any]:
    """A visit rule, surge, service team, service and visitor profile of ``community``."""
    code = f"{community.code}-{elder.pk}"
    provider = ServiceProvider.objects.create(
        name=f"驿站{code}", kind="community_station", area=community
    )
    visitor = make_user(Role.VISITOR, community, username=f"team-visitor-{code}")
    return {
        "visit_rule": VisitRule.objects.create(
            code=f"rule-{code}",
            name=f"规则{code}",
            effective_from=dt.date(2026, 1, 1),
            frequency="week",
            area=community,
        ),
        "surge": VisitSurge.objects.create(
            code=f"surge-{code}",
            reason="高温",
            area=community,
            starts_on=dt.date(2026, 7, 10),
            ends_on=dt.date(2026, 7, 14),
        ),
        "provider": provider,
        "service": ServiceEntry.objects.create(
            name=f"服务{code}", needs=["rehabilitation_nursing"], area=community
        ),
        "visitor_profile": VisitorProfile.objects.create(user=visitor, provider=provider),
    }


@pytest.fixture
def world() -> World:
    tree = make_tree()
    tianjin = make_area("120000", "天津市", AreaLevel.CITY)
    heping = make_area("120101", "和平区", AreaLevel.DISTRICT, tianjin)
    street = make_area("120101001", "劝业场街道", AreaLevel.SUBDISTRICT, heping)
    community = make_area(
        "120101001001",
        "花园社区",
        AreaLevel.COMMUNITY,
        street,
        community_kind=CommunityKind.RESIDENTS,
    )
    here = tree.communities[0]
    world = World(
        mine=_bundle(here, "本区甲", "110101", "13900000001"),
        fangshan=_bundle(tree.communities[4], "越界乙", "110105", "13900000002"),
        tianjin=_bundle(community, "越界丙", "120101", "13900000003"),
        unassigned=_bundle(
            tree.communities[0],
            "未分配丁",
            "110102",
            "13900000004",
            kinds=frozenset(
                {"elder", "first_contact", "visit", "care_action"}
                | {"alert", "meter", "device", "absence"}
                | {"emergency"}
                | {"referral"}
            ),
        ),
    )
    lonely_widow(tree.communities[1])  # someone else in scope, so lists are not empty
    dongcheng = tree.districts[0]
    places = {
        Role.CITY_ADMIN: tree.city,
        Role.DISTRICT_SUPERVISOR: dongcheng,
        Role.SUBDISTRICT_STAFF: tree.subdistricts[0],
        Role.COMMUNITY_WORKER: here,
        Role.VISITOR: here,
        Role.DATA_PARTNER: dongcheng,
        Role.AUDITOR: dongcheng,
    }
    for role in ROLES:
        world.users[role] = make_user(role, places[role], username=f"matrix-{role}")
    VisitorAssignment.objects.create(
        elder=world.mine.elder, visitor=world.users[Role.VISITOR], starts_on=dt.date(2020, 1, 1)
    )
    # The matrix's data partner is the contact of her own bundle's utility only.
    _monitoring(world.mine, world.users[Role.DATA_PARTNER])
    for bundle in (world.fangshan, world.tianjin, world.unassigned):
        _monitoring(bundle, None)
    for bundle in (world.mine, world.fangshan, world.tianjin):
        _notifications(bundle)
    for bundle in (world.mine, world.fangshan, world.tianjin, world.unassigned):
        _emergencies(bundle)
    for bundle in (world.mine, world.fangshan, world.tianjin, world.unassigned):
        _referrals(bundle)
    # The visitor's own visit (she is its author and owns its care action); the others are
    # recorded by the system and owned by their community's worker.
    _visit_with_action(world.mine, world.users[Role.VISITOR])
    for bundle in (world.fangshan, world.tianjin, world.unassigned):
        _visit_with_action(bundle, None)
    return world


def _visit_with_action(bundle: Bundle, actor: User | None) -> None:
    now = timezone.now()
    visit, _ = visit_record(
        actor=actor,
        elder=bundle.elder,
        data=VisitInput(
            client_uuid=uuid.uuid4(),
            mode="in_home",
            started_at=now - dt.timedelta(minutes=30),
            ended_at=now - dt.timedelta(minutes=10),
            person_met="elder",
            outcome="met",
            sections={"safety": {"gas": {"hazard": True, "what": "matrix"}}},
            consent=True,
        ),
    )
    bundle.visit = visit
    bundle.care_action = CareAction.objects.get(visit=visit, kind="hazard")


# --------------------------------------------------------------------------- the patterns


@dataclass(frozen=True)
class Endpoint:
    regex: str
    name: str
    callback: Any

    @property
    def family(self) -> str:
        if self.regex.startswith("admin/"):
            return "admin"
        if self.regex.startswith("api/"):
            return "api"
        return "web"

    @property
    def is_drf(self) -> bool:
        return hasattr(self.callback, "cls")

    def methods(self) -> list[str]:
        if self.is_drf:
            cls = self.callback.cls
            return [m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)]
        return ["GET", "POST"]


def _strip(regex: str) -> str:
    regex = regex.removeprefix("^")
    for end in ("\\Z", "$"):
        regex = regex.removesuffix(end)
    return regex


def endpoints(patterns: Any = None) -> list[Endpoint]:
    """Every URL pattern of the project, with its full regex and namespaced name."""

    def walk(items: Any, prefix: str, spaces: tuple[str, ...]) -> Iterator[Endpoint]:
        for item in items:
            regex = prefix + _strip(item.pattern.regex.pattern)
            if isinstance(item, URLResolver):
                inner = (*spaces, item.namespace) if item.namespace else spaces
                yield from walk(item.url_patterns, regex, inner)
            else:
                assert isinstance(item, URLPattern)
                name = ":".join((*spaces, item.name)) if item.name else ""
                yield Endpoint(regex, name, item.callback)

    return list(walk(patterns or get_resolver().url_patterns, "", ()))


# Path segment before an ``object_id``/``pk``/``id`` → the kind of object it names.
SEGMENT_KINDS = {
    "elders": "elder",
    "elder": "elder",
    "r": "elder",  # the admin's view-on-site shortcut, with the elder's content type
    "first-contacts": "first_contact",
    "firstcontact": "first_contact",
    "areas": "area_code",
    "area": "area",
    "user": "user",
    "othercategoryrule": "rule",
    "visits": "visit",
    "care-actions": "care_action",
    # The back office of visits: records that belong to an area.
    "visitrule": "visit_rule",
    "visitsurge": "surge",
    "serviceprovider": "provider",
    "serviceentry": "service",
    "visitorprofile": "visitor_profile",
    # The city's policy rows (holiday surges, counting rules) belong to no area: every
    # back-office user may read them, so no bundle stands for them.
    "holidaysurge": "city_policy",
    "countingrule": "city_policy",
    # Monitoring: alerts, and the meters, devices and absences of an elder's home.
    "alerts": "alert",
    "alert": "alert",
    "meter": "meter",
    "device": "device",
    "absence": "absence",
    "districtrules": "district_rules",
    # Emergencies: a case of an elder, a district's timers.
    "emergencies": "emergency",
    "emergencyrules": "emergency_rules",
    # Notifications: an elder's family contact, a district's wording and rules, a group.
    "familycontact": "family_contact",
    "messagetemplate": "message_template",
    "notificationrules": "notification_rules",
    "wecomgroup": "wecom_group",
    # Referrals: a need of an elder sent to her subdistrict, a district's time limits.
    "referrals": "referral",
    "referral": "referral",
    "referralrules": "referral_rules",
    # Data partners are the city's: every back-office user with the right may read them;
    # so are their deliveries (batches hold meters and counts, never an elder).
    "datapartner": "city_policy",
    "ingestbatch": "city_policy",
}
# Parameter names that say what they are.
NAME_KINDS = {
    "elder_id": "elder",
    "elder_pk": "elder",
    "first_contact_id": "first_contact",
    "contact_id": "first_contact",
    "area_id": "area",
    "area_code": "area_code",
    "user_id": "user",
    "rule_id": "rule",
    "visit_id": "visit",
    "action_id": "care_action",
    "alert_id": "alert",
    "case_id": "emergency",
    "referral_id": "referral",
    # A partner's delivery belongs to no area (see "ingestbatch" above).
    "batch_id": "city_policy",
}
# Parameters that name no record.
PLAIN = {
    "url": lambda: "no-such-page/",
    "app_label": lambda: "registry",
    "content_type_id": lambda: str(ContentType.objects.get_for_model(Elder).pk),
    # The family's confirm link: a token nobody was given.
    "token": lambda: "no-such-token-0000",
}


def _kind_of(fmt: str, param: str) -> str:
    if param in NAME_KINDS:
        return NAME_KINDS[param]
    if param in ("pk", "id", "object_id", "code"):
        before = fmt.split(f"%({param})s", 1)[0]
        segments = [s for s in before.split("/") if s and not s.startswith("%(")]
        if segments and segments[-1] in SEGMENT_KINDS:
            return SEGMENT_KINDS[segments[-1]]
    raise AssertionError(
        f"tests/test_access_matrix.py cannot fill the parameter {param!r} of {fmt!r}: map it in "
        "NAME_KINDS or SEGMENT_KINDS to the kind of record it names (for a new kind of record, "
        "also add the record to Bundle and _value), so the new URL is checked for scope"
    )


def _value(bundle: Bundle, kind: str) -> str:
    return {
        "elder": lambda: str(bundle.elder.pk),
        "first_contact": lambda: str(bundle.first_contact.pk),
        "area": lambda: str(bundle.community.pk),
        "area_code": lambda: bundle.community.code,
        "user": lambda: str(bundle.user.pk),
        "rule": lambda: str(bundle.rule.pk),
        "visit": lambda: str(bundle.visit.pk),  # type: ignore[union-attr]
        "care_action": lambda: str(bundle.care_action.pk),  # type: ignore[union-attr]
        **{name: (lambda name=name: str(bundle.team[name].pk)) for name in TEAM_KINDS},
        **{name: (lambda name=name: str(bundle.monitoring[name].pk)) for name in MONITORING_KINDS},
        **{name: (lambda name=name: str(bundle.monitoring[name].pk)) for name in EMERGENCY_KINDS},
        **{name: (lambda name=name: str(bundle.monitoring[name].pk)) for name in REFERRAL_KINDS},
        **{
            name: (lambda name=name: str(bundle.notifications[name].pk))
            for name in NOTIFICATION_KINDS
        },
    }[kind]()


def fill(
    endpoint: Endpoint, bundle: Bundle, *, city_policy: str | None = None
) -> tuple[str, set[str]] | None:
    """The URL with every parameter filled from ``bundle``, and the object kinds it names;
    None when the bundle cannot stand for one of them. No bundle stands for a record of no
    area (``city_policy``): the matrix skips such URLs; a positive check passes the record's
    id as ``city_policy``."""
    fmt, params = normalize(endpoint.regex)[0]
    values: dict[str, str] = {}
    kinds: set[str] = set()
    for param in params:
        if param in PLAIN:
            values[param] = PLAIN[param]()
            continue
        kind = _kind_of(fmt, param)
        if kind == "city_policy" and city_policy is not None:
            values[param] = city_policy
            continue
        if kind not in bundle.kinds:
            return None
        kinds.add(kind)
        values[param] = _value(bundle, kind)
    return "/" + fmt % values, kinds


def post_body(bundle: Bundle, family: str) -> dict[str, Any]:
    """A plausible body for any form or endpoint, aimed at ``bundle``'s records."""
    body: dict[str, Any] = {
        "field": "id_number",
        "reason": "matrix check",
        "category": "impaired",
        "action": "add",
        "name": "越权写入",
        "relation": "neighbour",
        "phone": "13311112222",
        "note": "matrix",
        "address": "matrix",
        "elder": bundle.elder.pk,
        "community": bundle.community.pk,
        "community_code": bundle.community.code,
        "id_number": new_id_number(dt.date(1939, 9, 9)),
        "username": "matrix-new",
        "password1": "m-Long-pass-9876",
        "password2": "m-Long-pass-9876",
        "usable_password": "true",
        "role": Role.VISITOR,
        "area": bundle.community.pk,
        "district": bundle.district.pk,
        "code": "m",
        "label": "m",
        "active": "on",
        "conditions": json.dumps({"all": [{"fact": "age", "op": ">=", "value": 60}]}),
        "post": "yes",
        "outcome": "all_well",
        "starts_on": "2026-02-01",
        "_save": "Save",
    }
    if family == "api":
        body["area"] = bundle.community.code
    return body


# --------------------------------------------------------------------------- requests


def _body(response: HttpResponse) -> str:
    # Reading a streamed body to its end closes it (the test client's wrapper does so without
    # closing the database connection; calling close() here would close it on PostgreSQL).
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    else:
        content = response.content
    return content.decode("utf-8", errors="replace")


_clients: dict[int, Client] = {}


def client_of(user: User | None) -> Client:
    """A signed-in client per user, reused across requests (signing in each time doubles the
    matrix's run time)."""
    if user is None:
        return Client()
    if user.pk not in _clients:
        client = Client()
        client.force_login(user)
        _clients[user.pk] = client
    return _clients[user.pk]


def request(user: User | None, method: str, url: str, endpoint: Endpoint, data: Any) -> Any:
    client = client_of(user)
    if endpoint.name in PUBLIC and user is not None:
        _clients.pop(user.pk)  # logging out, switching language: use this client once
    if method == "GET":
        return client.get(url, data)
    if endpoint.family == "api":
        return client.generic(method, url, json.dumps(data), content_type="application/json")
    return client.generic(
        method, url, _urlencode(data), content_type="application/x-www-form-urlencoded"
    )


def _urlencode(data: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return urlencode(data)


def refused(endpoint: Endpoint, user: User | None, response: Any, hops: int = 2) -> bool:
    """Whether ``response`` refuses: a login page for anonymous users, 403/404 for others.

    A redirect elsewhere (the admin's ``<id>/`` → ``<id>/change/``) is followed and judged by
    where it lands; the admin's "no such object" redirect to its index counts as a refusal.
    """
    status = response.status_code
    location = response.get("Location", "") if status in (301, 302) else ""
    if user is None:
        if endpoint.family == "api":
            return status in (401, 403)
        login = "/admin/login/" if endpoint.family == "admin" else "/login/"
        return status in (302, 405) and (status == 405 or location.startswith(login))
    if status in (403, 404, 405):
        return True
    if status not in (301, 302) or not location.startswith("/"):
        return False
    if endpoint.family == "admin" and (
        location in ("/admin/", "/admin/login/") or location.startswith("/admin/login/?")
    ):
        return True
    if location.startswith("/login/") or hops == 0:
        return False
    landed = client_of(user).get(location)
    _body(landed)
    return refused(endpoint, user, landed, hops - 1)


def _describe(user: User | None, method: str, url: str, response: Any) -> str:
    who = user.role if user is not None else "anonymous"
    return f"{who} {method} {url} → {response.status_code} {response.get('Location', '')}"


def run_matrix(world: World, selected: Callable[[Endpoint], bool] = lambda e: True) -> list[str]:
    """Request every selected endpoint as every role; return what went wrong."""
    problems: list[str] = []
    _clients.clear()
    people: list[User | None] = [None, *world.users.values()]
    for endpoint in (e for e in endpoints() if selected(e)):
        for user in people:
            for bundle in world.outside(user):
                filled = fill(endpoint, bundle)
                if filled is None:
                    continue
                url, kinds = filled
                for method in endpoint.methods():
                    if method == "GET":
                        data: Any = {
                            "area": bundle.community.code
                            if endpoint.family == "api"
                            else bundle.community.pk
                        }
                        if not kinds:
                            data["elder"] = bundle.elder.pk
                    else:
                        data = post_body(bundle, endpoint.family)
                    response = request(user, method, url, endpoint, data)
                    if response.status_code >= 500:
                        problems.append("server error: " + _describe(user, method, url, response))
                        continue
                    public = endpoint.name in PUBLIC
                    must_refuse = bool(kinds) or (user is None and not public)
                    if must_refuse and not refused(endpoint, user, response):
                        problems.append("not refused: " + _describe(user, method, url, response))
                        _body(response)
                        continue
                    body = _body(response)
                    sent = url + json.dumps(data, ensure_ascii=False, default=str)
                    leaked = [m for m in bundle.markers() if m and m in body and m not in sent]
                    if leaked:
                        problems.append(
                            f"leaked {leaked}: " + _describe(user, method, url, response)
                        )
    return problems


def outside_state(world: World) -> Any:
    """Everything about the outside records that a refused request must leave unchanged."""
    state = []
    for bundle in (world.fangshan, world.tianjin, world.unassigned):
        elder = Elder.objects.filter(pk=bundle.elder.pk).values().get()
        elder.pop("updated_at")
        state.append(
            (
                elder,
                list(FirstContact.objects.filter(elder=bundle.elder).values()),
                list(ElderChange.objects.filter(elder=bundle.elder).values()),
                list(CategoryOverride.objects.filter(elder=bundle.elder).values()),
                list(OtherCategoryRule.objects.filter(district=bundle.district).values()),
                Area.objects.filter(pk=bundle.community.pk).values().get(),
                User.objects.filter(pk=bundle.user.pk).values().get(),
                list(Visit.objects.filter(elder=bundle.elder).values()),
                list(CareAction.objects.filter(elder=bundle.elder).values()),
                list(Alert.objects.filter(elder=bundle.elder).values()),
                list(Absence.objects.filter(elder=bundle.elder).values()),
                list(Meter.objects.filter(elder=bundle.elder).values()),
                list(Device.objects.filter(elder=bundle.elder).values()),
                list(EmergencyCase.objects.filter(elder=bundle.elder).values()),
                list(Referral.objects.filter(elder=bundle.elder).values()),
            )
        )
    return state, User.objects.count(), Elder.objects.count()


# --------------------------------------------------------------------------- the tests


def test_every_url_refuses_what_lies_outside_the_scope(world: World) -> None:
    before = outside_state(world)
    problems = run_matrix(world)
    assert problems == [], "\n".join(problems)
    assert outside_state(world) == before
    outside_elders = [b.elder.pk for b in (world.fangshan, world.tianjin, world.unassigned)]
    seen = AuditEntry.objects.filter(
        elder_id__in=outside_elders,
        action__in=[AuditAction.VIEW_RECORD, AuditAction.REVEAL_IDENTIFIER, AuditAction.EXPORT],
    )
    assert not seen.exists(), list(seen.values("actor_username", "action", "elder_id"))
    # The matrix really ran: one list audit entry per list request of each reader.
    assert AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).exists()


def test_the_matrix_covers_every_family_of_url() -> None:
    families = {e.family for e in endpoints()}
    assert families == {"admin", "api", "web"}
    names = {e.name for e in endpoints()}
    assert {"v1:elder-detail", "admin:registry_elder_change", "admin:accounts_user_change"} <= names


# Positive checks: (role, method, url template, expected status). ``{elder}`` is the
# visitor's assigned elder in Dongcheng, community 1 (in everyone's scope who reads elders).
REACHES = [
    (Role.COMMUNITY_WORKER, "GET", "/api/v1/elders/{elder}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/api/v1/areas/{area_code}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/api/v1/first-contacts/{first_contact}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/admin/", 302),
    (Role.VISITOR, "GET", "/api/v1/elders/{elder}/", 200),
    (Role.VISITOR, "GET", "/api/v1/elders/{elder}/classification/", 200),
    (Role.VISITOR, "GET", "/api/v1/areas/", 403),
    (Role.VISITOR, "PATCH", "/api/v1/elders/{elder}/", 403),
    (Role.SUBDISTRICT_STAFF, "GET", "/admin/registry/elder/{elder}/change/", 200),
    (Role.SUBDISTRICT_STAFF, "GET", "/admin/accounts/user/", 403),
    (Role.DISTRICT_SUPERVISOR, "GET", "/api/v1/elders/{elder}/", 200),
    (Role.DISTRICT_SUPERVISOR, "PATCH", "/api/v1/elders/{elder}/", 403),
    (Role.DISTRICT_SUPERVISOR, "GET", "/admin/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/admin/accounts/user/{user}/change/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/admin/registry/othercategoryrule/{rule}/change/", 200),
    (Role.CITY_ADMIN, "GET", "/api/v1/elders/{fangshan_elder}/", 200),
    (Role.CITY_ADMIN, "GET", "/admin/registry/elder/{fangshan_elder}/change/", 200),
    (Role.CITY_ADMIN, "GET", "/admin/areas/area/{area}/change/", 200),
    (Role.DATA_PARTNER, "GET", "/api/v1/areas/{area_code}/", 200),
    (Role.DATA_PARTNER, "GET", "/api/v1/elders/", 403),
    (Role.DATA_PARTNER, "GET", "/api/v1/me/", 200),
    (Role.DATA_PARTNER, "GET", "/admin/", 302),
    (Role.AUDITOR, "GET", "/api/v1/me/", 200),
    (Role.AUDITOR, "GET", "/api/v1/elders/", 403),
    (Role.AUDITOR, "GET", "/api/v1/schema/", 200),
    (Role.VISITOR, "GET", "/worklist/", 200),
    (Role.VISITOR, "GET", "/visits/{visit}/", 200),
    (Role.VISITOR, "GET", "/visits/{visit}/edit/", 200),
    (Role.VISITOR, "GET", "/care/{care_action}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/care/{care_action}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/visits/{visit}/edit/", 302),
    (Role.DISTRICT_SUPERVISOR, "GET", "/visits/{visit}/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/care/", 403),
    (Role.VISITOR, "GET", "/alerts/{alert}/", 200),
    (Role.VISITOR, "GET", "/api/v1/alerts/{alert}/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/alerts/{alert}/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/api/v1/alerts/{alert}/", 200),
    (Role.DISTRICT_SUPERVISOR, "POST", "/api/v1/alerts/{alert}/acknowledge/", 403),
    (Role.DATA_PARTNER, "GET", "/api/v1/alerts/{technical_alert}/", 200),
    (Role.DATA_PARTNER, "GET", "/api/v1/alerts/{alert}/", 404),
    (Role.DATA_PARTNER, "GET", "/api/v1/elders/{elder}/alerts/", 403),
    (Role.AUDITOR, "GET", "/api/v1/alerts/", 403),
    (Role.VISITOR, "POST", "/api/v1/alerts/{alert}/acknowledge/", 200),
    (Role.VISITOR, "GET", "/emergencies/{emergency}/", 200),
    (Role.VISITOR, "GET", "/api/v1/emergencies/{emergency}/", 200),
    (Role.VISITOR, "POST", "/api/v1/emergencies/{emergency}/confirm/", 200),
    (Role.COMMUNITY_WORKER, "GET", "/emergencies/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/emergencies/{emergency}/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/api/v1/emergencies/", 200),
    (Role.DATA_PARTNER, "GET", "/api/v1/emergencies/{emergency}/", 403),
    (Role.AUDITOR, "GET", "/emergencies/", 403),
    # Family notifications: a worker's inbox; the contact list in the back office.
    (Role.COMMUNITY_WORKER, "GET", "/inbox/", 200),
    (Role.VISITOR, "GET", "/inbox/", 200),
    (Role.AUDITOR, "GET", "/inbox/", 403),
    (Role.DATA_PARTNER, "GET", "/inbox/", 403),
    (Role.SUBDISTRICT_STAFF, "GET", "/admin/notifications/familycontact/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/admin/notifications/messagetemplate/add/", 200),
    (Role.COMMUNITY_WORKER, "POST", "/elders/{elder}/family-contacts/", 400),
    # Referrals: the subdistrict handles them, the community and the district follow them.
    (Role.SUBDISTRICT_STAFF, "GET", "/referrals/{referral}/", 200),
    (Role.SUBDISTRICT_STAFF, "POST", "/api/v1/referrals/{referral}/steps/", 400),
    (Role.COMMUNITY_WORKER, "GET", "/referrals/", 200),
    (Role.COMMUNITY_WORKER, "POST", "/api/v1/referrals/{referral}/steps/", 403),
    (Role.DISTRICT_SUPERVISOR, "GET", "/referrals/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/api/v1/referrals/{referral}/", 200),
    (Role.DISTRICT_SUPERVISOR, "GET", "/admin/referrals/referralrules/add/", 200),
    (Role.VISITOR, "GET", "/referrals/", 403),
    (Role.DATA_PARTNER, "GET", "/api/v1/referrals/", 403),
    (Role.AUDITOR, "GET", "/referrals/{referral}/", 403),
]


@pytest.mark.parametrize(("role", "method", "template", "status"), REACHES)
def test_each_role_reaches_what_it_should(
    world: World, role: str, method: str, template: str, status: int
) -> None:
    mine = world.mine
    url = template.format(
        elder=mine.elder.pk,
        area_code=mine.community.code,
        area=mine.community.pk,
        first_contact=mine.first_contact.pk,
        user=mine.user.pk,
        rule=mine.rule.pk,
        fangshan_elder=world.fangshan.elder.pk,
        visit=getattr(mine.visit, "pk", None),
        care_action=getattr(mine.care_action, "pk", None),
        alert=mine.monitoring["alert"].pk,
        technical_alert=mine.monitoring["technical_alert"].pk,
        emergency=mine.monitoring["emergency"].pk,
        referral=mine.monitoring["referral"].pk,
    )
    client = Client()
    client.force_login(world.users[role])
    response = client.generic(method, url, "{}", content_type="application/json")
    assert response.status_code == status, response.content[:300]
    if status == 200 and template.endswith(("elder}/", "elder}/change/", "visit}/")):
        shown = world.fangshan.elder if "fangshan" in template else mine.elder
        assert shown.name in response.content.decode()


def test_web_pages_let_in_exactly_the_roles_they_declare(world: World) -> None:
    """A page declaring capabilities opens (with records in scope) for a role that has them
    and refuses one that lacks them; it is not closed by an over-narrow scope either."""
    problems = []
    _clients.clear()
    partner_view = replace(
        world.mine,
        monitoring={**world.mine.monitoring, "alert": world.mine.monitoring["technical_alert"]},
    )
    for endpoint in endpoints():
        if endpoint.family != "web":
            continue
        declared = declared_access(endpoint.callback)
        if not isinstance(declared, tuple):
            continue
        for role, user in world.users.items():
            # A data partner's alerts are the technical ones of her utility's meters.
            bundle = partner_view if role == Role.DATA_PARTNER else world.mine
            # A record of no area: the delivery of the partner the data partner's user is
            # the contact of (everyone else who may read it reads every partner's).
            filled = fill(endpoint, bundle, city_policy=str(world.mine.monitoring["batch"].pk))
            assert filled is not None
            url, _ = filled
            allowed = all(c in ROLE_CAPABILITIES[role] for c in declared)
            response = client_of(user).get(url)
            _body(response)
            ok = (
                response.status_code not in (403, 404) if allowed else (response.status_code == 403)
            )
            if not ok:
                problems.append(
                    f"{role} GET {url} → {response.status_code} (declared "
                    f"{[str(c) for c in declared]})"
                )
    assert problems == [], "\n".join(problems)


def test_every_view_declares_its_access() -> None:
    undeclared = []
    for endpoint in endpoints():
        if endpoint.family == "admin":
            continue  # the admin site checks BACK_OFFICE and each ModelAdmin scopes itself
        if endpoint.is_drf:
            cls = endpoint.callback.cls
            permissions = list(cls.permission_classes)
            needed = getattr(cls, "required_capabilities", None)
            if permissions == [SignedInWithRole]:
                continue  # the schema and its docs page: no data of their own
            if permissions != [DenyByDefault] or not needed:
                undeclared.append(f"{endpoint.regex} ({cls.__name__})")
            elif needed != ANY_ROLE:
                assert all(isinstance(c, Capability) for c in needed), endpoint.regex
            continue
        if declared_access(endpoint.callback) is None:
            undeclared.append(endpoint.regex)
    assert undeclared == []


# --------------------------------------------------------------------------- the matrix fails


@requires(Capability.VIEW_ELDERS)
def leaky_page(request: HttpRequest, elder_id: int) -> HttpResponse:
    """A page that forgot the scope: it must make the matrix fail."""
    return HttpResponse(Elder.objects.get(pk=elder_id).name)


class LeakyApi(ScopedAPIView):
    required_capabilities = (Capability.VIEW_ELDERS,)

    def get(self, request: Request, pk: int) -> Response:
        return Response({"name": Elder.objects.get(pk=pk).name})


def undeclared_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


urlpatterns = [
    *get_resolver("tanfang.urls").url_patterns,
    path("leaky/<int:elder_id>/", leaky_page, name="leaky-page"),
    path("api/v1/elders/<int:pk>/leaky/", LeakyApi.as_view(), name="leaky-api"),
    path("undeclared/", undeclared_page, name="undeclared"),
]


@override_settings(ROOT_URLCONF=__name__)
def test_the_matrix_catches_a_view_that_forgets_the_scope(world: World) -> None:
    problems = run_matrix(world, lambda e: "leaky" in e.regex)
    assert any("/leaky/" in p and "community_worker" in p for p in problems), problems
    assert any("/leaky/" in p and "/api/" in p and "district_supervisor" in p for p in problems), (
        problems
    )
    assert all(p.startswith("not refused") for p in problems)
    assert not any(p.startswith("not refused: anonymous") for p in problems)
    with pytest.raises(AssertionError, match="undeclared"):
        test_every_view_declares_its_access()


def test_an_unknown_parameter_fails_loudly() -> None:
    endpoint = Endpoint(r"widgets/(?P<widget_id>[0-9]+)/", "widget", lambda r: None)
    with pytest.raises(AssertionError, match="widget_id"):
        fill(endpoint, Bundle.__new__(Bundle))
