"""The visit form and the visit page: recording on a phone (idempotent), errors next to their
fields, the author's correction within 24 hours, the PDFs and the audit entries they write."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction
from tanfang.registry.models import Elder
from tanfang.visits.models import Visit, VisitRevision
from tests.factories import assigned_visitor, make_tree, make_user, parent_with_son, record_visit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class Place:
    visitor: User
    worker: User
    elder: Elder  # assigned to the visitor
    other: Elder  # same community, not assigned to her


@pytest.fixture
def place() -> Place:
    tree = make_tree()
    community = tree.communities[0]
    visitor, elder = assigned_visitor(community, days_ago=30)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    other = parent_with_son(community)
    return Place(visitor, worker, elder, other)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _local(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


def form_data(**overrides: Any) -> dict[str, Any]:
    """A filled-in form: an in-home visit of 20 minutes that ended 5 minutes ago."""
    end = timezone.now() - dt.timedelta(minutes=5)
    data: dict[str, Any] = {
        "client_uuid": str(uuid.uuid4()),
        "mode": "in_home",
        "started_at": _local(end - dt.timedelta(minutes=20)),
        "ended_at": _local(end),
        "person_met": "elder",
        "outcome": "met",
        "organised_by": "government",
        "health-mobility": "aided",
        "safety-gas-hazard": "yes",
        "safety-gas-what": "燃气软管老化开裂",
        "safety-water-hazard": "no",
        "needs-kinds": ["rehabilitation_nursing"],
        "consent": "on",
        "notes": "老人精神尚可",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_form_has_a_fresh_submission_id_sections_and_sensible_defaults(place: Place) -> None:
    client = signed_in(place.visitor)
    url = reverse("visit-new", args=[place.elder.pk])
    first = client.get(url)
    second = client.get(url + "?mode=in_home")
    assert first.status_code == 200 and first["Cache-Control"].startswith("max-age=0")
    html = first.content.decode()
    ids = [r.context["form"].initial["client_uuid"] for r in (first, second)]
    assert ids[0] != ids[1]  # each rendering is a new submission
    assert f'value="{ids[0]}"' in html
    for section in ("health", "economy", "family", "safety", "needs"):
        assert f'data-testid="section-{section}"' in html
    assert 'name="safety-gas-hazard"' in html and 'name="safety-gas-what"' in html
    assert 'name="consent"' in html and 'id="location-add"' in html
    # Default times: ended now (Asia/Shanghai), started 15 minutes earlier.
    initial = first.context["form"].initial
    assert initial["ended_at"] - initial["started_at"] == dt.timedelta(minutes=15)
    assert abs(timezone.now() - initial["ended_at"]) < dt.timedelta(minutes=2)
    assert str(timezone.localtime(initial["ended_at"]).tzinfo) == "Asia/Shanghai"
    assert second.context["form"].initial["mode"] == "in_home"
    # Rendering the form records nothing.
    assert not Visit.objects.exists()


def test_recording_a_visit_saves_the_sections_opens_care_actions_and_shows_the_record(
    place: Place,
) -> None:
    client = signed_in(place.visitor)
    data = form_data(latitude="39.904200", longitude="116.407400", accuracy="12.4")
    response = client.post(reverse("visit-new", args=[place.elder.pk]), data)
    visit = Visit.objects.get(elder=place.elder)
    assert response.status_code == 302
    assert response["Location"] == reverse("visit-detail", args=[visit.pk])
    assert str(visit.client_uuid) == data["client_uuid"]
    assert visit.source == "web" and visit.recorded_by == place.visitor
    assert visit.sections["safety"] == {
        "gas": {"hazard": True, "what": "燃气软管老化开裂"},
        "water": {"hazard": False},
    }
    assert visit.sections["needs"] == {"kinds": ["rehabilitation_nursing"]}
    assert visit.sections["health"] == {"mobility": "aided"}
    assert visit.sections["consent"] == {"care_actions": True, "given_by": "elder"}
    assert visit.consent is True and visit.notes == "老人精神尚可"
    assert (float(visit.latitude), float(visit.longitude)) == (39.9042, 116.4074)
    assert visit.location_accuracy_m == 12
    assert visit.risk_level == "high" and "gas_hazard" in visit.risk_reasons
    opened = set(CareAction.objects.filter(visit=visit).values_list("kind", "subject"))
    assert {("hazard", "gas"), ("service", "rehabilitation_nursing")} <= opened
    assert AuditEntry.objects.filter(
        action=AuditAction.CREATE_RECORD, elder_id=place.elder.pk, actor=place.visitor
    ).exists()

    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-risk="high"' in html
    assert 'data-kind="hazard" data-subject="gas"' in html
    assert 'data-kind="service" data-subject="rehabilitation_nursing"' in html
    assert "燃气软管老化开裂" in html
    assert 'data-testid="visit-correct"' in html  # the author, within 24 hours
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, elder_id=place.elder.pk, details__page="visit-detail"
    ).exists()


def test_the_same_submission_twice_is_one_visit(place: Place) -> None:
    client = signed_in(place.visitor)
    url = reverse("visit-new", args=[place.elder.pk])
    data = form_data()
    first = client.post(url, data)
    second = client.post(url, data)
    assert Visit.objects.filter(elder=place.elder).count() == 1
    assert first["Location"] == second["Location"]
    assert CareAction.objects.filter(elder=place.elder, kind="hazard").count() == 1


def test_without_consent_no_care_action_is_opened(place: Place) -> None:
    client = signed_in(place.visitor)
    client.post(reverse("visit-new", args=[place.elder.pk]), form_data(consent=None))
    visit = Visit.objects.get(elder=place.elder)
    assert visit.consent is False and visit.sections["consent"] == {}
    assert not CareAction.objects.filter(elder=place.elder).exists()


def test_a_location_is_kept_only_for_a_visit_in_the_home(place: Place) -> None:
    client = signed_in(place.visitor)
    data = form_data(mode="phone", latitude="39.9", longitude="116.4")
    response = client.post(reverse("visit-new", args=[place.elder.pk]), data)
    assert response.status_code == 302
    visit = Visit.objects.get(elder=place.elder)
    assert visit.mode == "phone" and visit.latitude is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mode": None}, "mode"),
        ({"mode": "carrier_pigeon"}, "mode"),
        ({"started_at": "not a time"}, "started_at"),
        ({"needs-kinds": ["other"]}, "needs-other"),
        ({"safety-gas-hazard": None}, "safety-gas-hazard"),
        ({"outcome": "met", "person_met": "nobody"}, "person_met"),
    ],
)
def test_errors_are_shown_next_to_their_field_and_name_it(
    place: Place, overrides: dict[str, Any], field: str
) -> None:
    client = signed_in(place.visitor)
    response = client.post(reverse("visit-new", args=[place.elder.pk]), form_data(**overrides))
    assert response.status_code == 400
    assert not Visit.objects.exists()
    html = response.content.decode()
    form = response.context["form"]
    assert field in form.errors, form.errors
    assert f'data-testid="error-{field}"' in html
    # The summary at the top names the field (its label) and links to it.
    label = str(form.fields[field].label)
    assert any(item[1] == label for item in response.context["summary"])
    assert f'href="#id_{field}"' in html
    # What was typed is kept, and the submission id too (a resubmission is still one visit).
    assert response.context["form"]["client_uuid"].value() == form.data["client_uuid"]


def test_an_end_before_the_start_is_an_error_on_the_end(place: Place) -> None:
    client = signed_in(place.visitor)
    now = timezone.now()
    data = form_data(
        started_at=_local(now - dt.timedelta(minutes=10)),
        ended_at=_local(now - dt.timedelta(minutes=40)),
    )
    response = client.post(reverse("visit-new", args=[place.elder.pk]), data)
    assert response.status_code == 400
    assert "ended_at" in response.context["form"].errors


def test_errors_are_in_chinese_by_default_and_in_english_on_request(place: Place) -> None:
    client = signed_in(place.visitor)
    url = reverse("visit-new", args=[place.elder.pk])
    html = client.post(url, form_data(mode=None)).content.decode()
    assert '<html lang="zh-Hans">' in html
    with translation.override("zh-hans"):
        required = str(forms.Field.default_error_messages["required"])
    assert required == "该字段是必填项。" and required in html
    client.post(reverse("set-language"), {"language": "en", "next": "/"})
    html = client.post(url, form_data(mode=None)).content.decode()
    assert "This field is required." in html and ">Mode</a>" in html


def test_an_elder_outside_the_scope_answers_404_and_nothing_is_recorded(place: Place) -> None:
    client = signed_in(place.visitor)
    url = reverse("visit-new", args=[place.other.pk])  # same community, not hers
    assert client.get(url).status_code == 404
    assert client.post(url, form_data()).status_code == 404
    assert not Visit.objects.exists()


def test_a_supervisor_who_does_not_record_visits_is_refused(place: Place) -> None:
    tree_district = place.elder.district
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree_district)
    response = signed_in(supervisor).get(reverse("visit-new", args=[place.elder.pk]))
    assert response.status_code == 403


# --- corrections ---------------------------------------------------------------------------


def _recorded(place: Place, **kw: Any) -> Visit:
    values: dict[str, Any] = {
        "mode": "phone",
        "ended_at": timezone.now() - dt.timedelta(minutes=20),
        "sections": {"health": {"mobility": "independent"}},
        "notes": "电话问候",
    }
    values.update(kw)
    return record_visit(place.visitor, place.elder, **values)


def test_the_author_corrects_her_record_and_every_change_is_kept(place: Place) -> None:
    visit = _recorded(place)
    client = signed_in(place.visitor)
    url = reverse("visit-edit", args=[visit.pk])
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["health-mobility"] == "independent"
    assert form.initial["notes"] == "电话问候"
    assert "client_uuid" not in form.fields  # a correction is not a new submission
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, details__page="visit-edit"
    ).exists()

    data = form_data(
        mode="phone",
        started_at=_local(visit.started_at),
        ended_at=_local(visit.ended_at),
        **{"health-mobility": "bedridden", "safety-gas-hazard": None, "safety-gas-what": None},
        notes="电话问候；卧床",
        consent=None,
    )
    data.pop("client_uuid")
    data.pop("needs-kinds")
    data.pop("safety-water-hazard")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    visit.refresh_from_db()
    assert visit.revision == 2
    assert visit.sections["health"] == {"mobility": "bedridden"}
    assert visit.notes == "电话问候；卧床"
    revision = VisitRevision.objects.get(visit=visit)
    assert set(revision.changes) == {"sections", "notes"}
    html = client.get(reverse("visit-detail", args=[visit.pk])).content.decode()
    assert 'data-testid="visit-revision"' in html
    assert "<del>电话问候</del>" in html


def test_only_the_author_within_24_hours_may_correct(place: Place) -> None:
    visit = _recorded(place)
    # Someone else (the community worker sees the record) is sent back to it.
    worker = signed_in(place.worker)
    response = worker.get(reverse("visit-edit", args=[visit.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("visit-detail", args=[visit.pk])
    assert worker.post(reverse("visit-edit", args=[visit.pk]), {"notes": "x"}).status_code == 302
    assert 'data-testid="visit-correct"' not in worker.get(response["Location"]).content.decode()
    # After 24 hours the record is locked, for its author too.
    Visit.objects.filter(pk=visit.pk).update(locked_after=timezone.now() - dt.timedelta(seconds=1))
    author = signed_in(place.visitor)
    assert author.get(reverse("visit-edit", args=[visit.pk])).status_code == 302
    visit.refresh_from_db()
    assert visit.revision == 1 and visit.notes == "电话问候"


def test_a_visit_outside_the_scope_answers_404(place: Place) -> None:
    visit = _recorded(place)
    tree_other = make_user(Role.VISITOR, place.elder.community)  # not assigned
    client = signed_in(tree_other)
    for name in ("visit-detail", "visit-edit", "visit-pdf"):
        assert client.get(reverse(name, args=[visit.pk])).status_code == 404, name


# --- PDFs -----------------------------------------------------------------------------------


def test_the_record_pdf_is_audited_as_an_export_and_the_blank_form_is_not(place: Place) -> None:
    visit = _recorded(place)
    client = signed_in(place.visitor)
    response = client.get(reverse("visit-pdf", args=[visit.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert response["Cache-Control"].startswith("max-age=0")
    entry = AuditEntry.objects.get(action=AuditAction.EXPORT)
    assert entry.elder_id == place.elder.pk and entry.details["visit"] == visit.pk
    blank = client.get(reverse("visit-form-pdf"))
    assert blank.status_code == 200 and blank.content.startswith(b"%PDF")
    assert AuditEntry.objects.filter(action=AuditAction.EXPORT).count() == 1


# --- the elder page's visit section --------------------------------------------------------


def test_the_elder_page_lists_her_visits_and_offers_to_record_one(place: Place) -> None:
    visit = _recorded(place)
    html = signed_in(place.visitor).get(reverse("elder-detail", args=[place.elder.pk])).content
    page = html.decode()
    assert 'data-testid="elder-visits"' in page
    assert f'data-testid="elder-visit-row" data-visit-id="{visit.pk}"' in page
    assert reverse("visit-new", args=[place.elder.pk]) in page
    # A supervisor reads visits but does not record them.
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, place.elder.district)
    page = signed_in(supervisor).get(reverse("elder-detail", args=[place.elder.pk])).content
    assert f'data-visit-id="{visit.pk}"'.encode() in page
    assert reverse("visit-new", args=[place.elder.pk]).encode() not in page
