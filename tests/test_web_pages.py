"""Who reaches which page: each page as each role, scope by area, and the two languages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import VisitorAssignment
from tests.factories import PASSWORD, Tree, lonely_widow, make_tree, make_user, parent_with_son


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # District and city counts are cached by area id and day; ids repeat across tests.
    cache.clear()


@pytest.fixture
def tree(db: None) -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


ELDER_PAGES = ("elder-detail", "elder-edit")


def test_login_page_is_chinese_by_default(db: None) -> None:
    response = Client().get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "登录" in html
    assert 'lang="zh-Hans"' in html


def test_an_english_browser_still_gets_chinese_until_the_user_chooses(db: None) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert "登录" in client.get(reverse("login")).content.decode()
    client.post(reverse("set-language"), {"language": "en", "next": "/login/"})
    assert "Sign in" in client.get(reverse("login")).content.decode()


def test_english_can_be_chosen_and_is_remembered(db: None) -> None:
    client = Client()
    response = client.post(reverse("set-language"), {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    html = client.get(reverse("login")).content.decode()
    assert "Sign in" in html
    assert "登录" not in html
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/login/"})
    assert "登录" in client.get(reverse("login")).content.decode()


def test_signing_in_leads_a_worker_to_the_elder_list(tree: Tree) -> None:
    make_user(Role.COMMUNITY_WORKER, tree.communities[0], "wang")
    client = Client()
    response = client.post(
        reverse("login"), {"username": "wang", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("elder-list")
    assert response.status_code == 200


def test_signing_in_leads_an_auditor_to_the_audit_log(tree: Tree) -> None:
    make_user(Role.AUDITOR, tree.city, "audit")
    response = Client().post(
        reverse("login"), {"username": "audit", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("audit-log")


def test_anonymous_users_are_sent_to_sign_in(tree: Tree) -> None:
    elder = lonely_widow(tree.communities[0])
    for url in (
        reverse("elder-list"),
        reverse("elder-detail", args=[elder.pk]),
        reverse("quality"),
        reverse("audit-log"),
        reverse("elder-export"),
        reverse("elder-new"),
    ):
        response = Client().get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    ("role", "level", "expected"),
    [
        (
            Role.CITY_ADMIN,
            "city",
            {
                "list": 200,
                "detail": 200,
                "edit": 200,
                "quality": 200,
                "audit": 403,
                "export": 200,
                "new": 200,
            },
        ),
        (
            Role.DISTRICT_SUPERVISOR,
            "district",
            {
                "list": 200,
                "detail": 200,
                "edit": 403,
                "quality": 200,
                "audit": 403,
                "export": 200,
                "new": 403,
            },
        ),
        (
            Role.SUBDISTRICT_STAFF,
            "subdistrict",
            {
                "list": 200,
                "detail": 200,
                "edit": 200,
                "quality": 200,
                "audit": 403,
                "export": 200,
                "new": 200,
            },
        ),
        (
            Role.COMMUNITY_WORKER,
            "community",
            {
                "list": 200,
                "detail": 200,
                "edit": 200,
                "quality": 200,
                "audit": 403,
                "export": 200,
                "new": 200,
            },
        ),
        (
            Role.VISITOR,
            "community",
            {
                "list": 200,
                "detail": 200,
                "edit": 403,
                "quality": 403,
                "audit": 403,
                "export": 403,
                "new": 403,
            },
        ),
        (
            Role.DATA_PARTNER,
            "city",
            {
                "list": 403,
                "detail": 403,
                "edit": 403,
                "quality": 403,
                "audit": 403,
                "export": 403,
                "new": 403,
            },
        ),
        (
            Role.AUDITOR,
            "city",
            {
                "list": 403,
                "detail": 403,
                "edit": 403,
                "quality": 403,
                "audit": 200,
                "export": 403,
                "new": 403,
            },
        ),
    ],
)
def test_each_page_as_each_role(
    tree: Tree, role: str, level: str, expected: dict[str, int]
) -> None:
    community = tree.communities[0]
    area = {
        "city": tree.city,
        "district": tree.districts[0],
        "subdistrict": tree.subdistricts[0],
        "community": community,
    }[level]
    user = make_user(role, area)
    elder = lonely_widow(community)
    if role == Role.VISITOR:
        VisitorAssignment.objects.create(elder=elder, visitor=user, starts_on="2024-01-01")
    client = signed_in(user)
    urls = {
        "list": reverse("elder-list"),
        "detail": reverse("elder-detail", args=[elder.pk]),
        "edit": reverse("elder-edit", args=[elder.pk]),
        "quality": reverse("quality"),
        "audit": reverse("audit-log"),
        "export": reverse("elder-export"),
        "new": reverse("elder-new"),
    }
    got = {name: client.get(url).status_code for name, url in urls.items()}
    assert got == expected


def test_an_elder_of_another_community_is_not_found(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elsewhere = lonely_widow(tree.communities[1])
    client = signed_in(worker)
    for name in ELDER_PAGES:
        assert client.get(reverse(name, args=[elsewhere.pk])).status_code == 404
    response = client.post(
        reverse("elder-reveal", args=[elsewhere.pk]), {"field": "id_number", "reason": "visit"}
    )
    assert response.status_code == 404
    assert not AuditEntry.objects.filter(elder_id=elsewhere.pk).exists()
    # Not-found and out-of-scope look the same.
    assert client.get(reverse("elder-detail", args=[999999])).status_code == 404


def test_a_visitor_sees_only_her_assigned_elders(tree: Tree) -> None:
    community = tree.communities[0]
    visitor = make_user(Role.VISITOR, community)
    mine = lonely_widow(community, name="赵淑珍")
    other = parent_with_son(community, name="钱国庆")
    VisitorAssignment.objects.create(elder=mine, visitor=visitor, starts_on="2024-01-01")
    client = signed_in(visitor)
    html = client.get(reverse("elder-list")).content.decode()
    assert "赵淑珍" in html
    assert "钱国庆" not in html
    assert client.get(reverse("elder-detail", args=[other.pk])).status_code == 404
    assert client.get(reverse("elder-detail", args=[mine.pk])).status_code == 200


def test_viewing_an_elder_page_is_audited(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    signed_in(worker).get(reverse("elder-detail", args=[elder.pk]))
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD, elder_id=elder.pk)
    assert entry.actor_username == worker.username
    assert entry.area_code == tree.communities[0].code


def test_navigation_follows_the_role(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    visitor = make_user(Role.VISITOR, tree.communities[0])
    auditor = make_user(Role.AUDITOR, tree.city)
    worker_html = signed_in(worker).get(reverse("elder-list")).content.decode()
    assert 'id="nav-quality"' in worker_html and 'id="nav-new-elder"' in worker_html
    assert 'id="nav-import"' in worker_html
    assert 'id="nav-audit"' not in worker_html
    visitor_html = signed_in(visitor).get(reverse("elder-list")).content.decode()
    assert 'id="nav-elders"' in visitor_html and 'id="nav-quality"' not in visitor_html
    auditor_html = signed_in(auditor).get(reverse("audit-log")).content.decode()
    assert 'id="nav-audit"' in auditor_html and 'id="nav-elders"' not in auditor_html


def test_pages_with_personal_data_are_not_cached(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    response = signed_in(worker).get(reverse("elder-detail", args=[elder.pk]))
    assert "no-store" in response["Cache-Control"]


def test_data_partner_start_page(tree: Tree) -> None:
    partner = make_user(Role.DATA_PARTNER, tree.city)
    response = signed_in(partner).get(reverse("home"))
    assert response.status_code == 200


def test_switching_language_after_a_reveal_returns_to_the_elder_page(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    response = signed_in(worker).post(
        reverse("elder-reveal", args=[elder.pk]), {"field": "id_number", "reason": "核对"}
    )
    detail = reverse("elder-detail", args=[elder.pk])
    assert f'name="next" value="{detail}"' in response.content.decode()
