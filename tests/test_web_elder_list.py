"""The elder list: search, filters, keyset paging, its audit entry, its query count, export."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import Elder, LifeStatus
from tanfang.registry.selectors import (
    ElderFilters,
    SearchKind,
    elder_page,
    search_for_audit,
    search_kind,
)
from tanfang.registry.services import life_status_set
from tests.factories import (
    Tree,
    lonely_widow,
    make_elder,
    make_tree,
    make_user,
    new_id_number,
    parent_with_son,
)


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def tree(db: None) -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def widow(community: Any, i: int, **kw: Any) -> Elder:
    """A lonely widow (living alone, focus) with her own birth date, hence her own ID."""
    return make_elder(
        community,
        name=kw.pop("name", f"老人{i}"),
        birth_date=dt.date(1930, 1, 1) + dt.timedelta(days=i),
        spouse_status="deceased",
        children=[],
        household=[],
        relatives_same_subdistrict=False,
        daily_companionship=False,
        disability_status="none",
        **kw,
    )


def shown_ids(response: Any) -> list[int]:
    return [row["elder"].pk for row in response.context["rows"]]


def test_search_kinds() -> None:
    assert search_kind("王秀兰") == SearchKind.NAME
    assert search_kind("11010119400501900X") == SearchKind.ID_NUMBER
    assert search_kind("110101 19400501 900x") == SearchKind.ID_NUMBER
    assert search_kind("900X") == SearchKind.ID_SUFFIX
    assert search_kind("1234") == SearchKind.ID_SUFFIX
    assert search_kind("13800138000") == SearchKind.PHONE
    assert search_kind("010-65123456") == SearchKind.PHONE
    # The audit log never keeps a full identifier typed into the search box.
    assert search_for_audit("11010119400501900X") == "110101********900X"
    assert search_for_audit("13800138000") == "138****8000"
    assert search_for_audit("王") == "王"


def test_a_worker_sees_only_her_community(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    mine = lonely_widow(tree.communities[0], name="赵淑珍")
    lonely_widow(tree.communities[1], name="孙玉兰")
    response = signed_in(worker).get(reverse("elder-list"))
    assert shown_ids(response) == [mine.pk]
    html = response.content.decode()
    assert mine.id_number_masked in html
    assert "孙玉兰" not in html


def test_search_by_name_full_id_last_four_and_phone(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    number = new_id_number(dt.date(1938, 2, 3))
    target = make_elder(
        community,
        name="周桂芳",
        id_number=number,
        phone="13912345678",
        birth_date=dt.date(1938, 2, 3),
    )
    make_elder(community, name="吴建华", phone="13700000000")
    # Out of scope: the same name elsewhere is never found.
    make_elder(tree.communities[1], name="周桂芳")
    client = signed_in(worker)
    for query in ("周桂", number, number.lower(), number[-4:], "139 1234 5678", "13912345678"):
        response = client.get(reverse("elder-list"), {"q": query})
        assert shown_ids(response) == [target.pk], query
    assert shown_ids(client.get(reverse("elder-list"), {"q": "不存在"})) == []


def test_full_id_search_is_audited_masked(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    number = new_id_number(dt.date(1938, 2, 3))
    make_elder(tree.communities[0], id_number=number, birth_date=dt.date(1938, 2, 3))
    signed_in(worker).get(reverse("elder-list"), {"q": number})
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert number not in str(entry.details)
    assert entry.details["filters"]["q"] == number[:6] + "********" + number[-4:]


def test_filters_focus_category_first_contact_life_status_area(tree: Tree) -> None:
    sub = tree.subdistricts[0]
    staff = make_user(Role.SUBDISTRICT_STAFF, sub)
    widow = lonely_widow(tree.communities[0])  # living alone, focus, no first contact
    parent = parent_with_son(tree.communities[1])  # has a first contact, not focus
    gone = lonely_widow(tree.communities[0], name="冯秀英")
    life_status_set(
        actor=None, elder=gone, status=LifeStatus.DECEASED, since=dt.date(2025, 1, 1), source="test"
    )
    client = signed_in(staff)

    def ids(**params: Any) -> set[int]:
        return set(shown_ids(client.get(reverse("elder-list"), params)))

    assert ids() == {widow.pk, parent.pk}
    assert ids(focus="on") == {widow.pk}
    assert ids(category="living_alone") == {widow.pk}
    assert ids(category="impaired") == set()
    assert ids(missing_first_contact="on") == {widow.pk}
    assert ids(life_status="deceased") == {gone.pk}
    assert ids(life_status="all") == {widow.pk, parent.pk, gone.pk}
    assert ids(area=tree.communities[1].pk) == {parent.pk}
    assert ids(area=tree.subdistricts[0].pk) == {widow.pk, parent.pk}
    # An area outside her scope is ignored, never used to widen it.
    assert ids(area=tree.communities[4].pk) == {widow.pk, parent.pk}


def test_the_area_filter_offers_the_path_and_the_children(tree: Tree) -> None:
    admin = make_user(Role.CITY_ADMIN, tree.city)
    client = signed_in(admin)
    choices = dict(client.get(reverse("elder-list")).context["form"].fields["area"].choices)
    assert str(tree.districts[0].pk) in choices
    assert str(tree.communities[0].pk) not in choices  # not until a subdistrict is chosen
    response = client.get(reverse("elder-list"), {"area": tree.subdistricts[0].pk})
    choices = dict(response.context["form"].fields["area"].choices)
    assert {
        str(tree.city.pk),
        str(tree.districts[0].pk),
        str(tree.subdistricts[0].pk),
        str(tree.communities[0].pk),
        str(tree.communities[1].pk),
    } <= set(choices)
    assert str(tree.communities[2].pk) not in choices


def test_keyset_paging_walks_forward_and_back(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    for i in range(7):
        widow(community, i)
    ids = list(Elder.objects.order_by("id").values_list("id", flat=True))
    first = elder_page(user=worker, filters=ElderFilters(), size=3)
    assert [e.pk for e in first.elders] == ids[:3]
    assert first.prev_before is None and first.next_after == ids[2]
    assert (first.count, first.count_capped) == (7, False)
    second = elder_page(user=worker, filters=ElderFilters(), after=first.next_after, size=3)
    assert [e.pk for e in second.elders] == ids[3:6]
    third = elder_page(user=worker, filters=ElderFilters(), after=second.next_after, size=3)
    assert [e.pk for e in third.elders] == ids[6:]
    assert third.next_after is None
    back = elder_page(user=worker, filters=ElderFilters(), before=third.prev_before, size=3)
    assert [e.pk for e in back.elders] == ids[3:6]
    assert back.prev_before == ids[3]


def test_paging_links_keep_the_filters(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    for i in range(52):
        widow(community, i)
    response = signed_in(worker).get(reverse("elder-list"), {"q": "老人"})
    assert len(shown_ids(response)) == 50
    html = response.content.decode()
    assert f"q=%E8%80%81%E4%BA%BA&amp;after={response.context['page'].next_after}" in html
    nxt = signed_in(worker).get(
        reverse("elder-list"), {"q": "老人", "after": response.context["page"].next_after}
    )
    assert len(shown_ids(nxt)) == 2


def test_each_list_page_writes_one_audit_entry(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    a = lonely_widow(tree.communities[0])
    b = parent_with_son(tree.communities[0])
    signed_in(worker).get(reverse("elder-list"), {"category": "living_alone", "focus": "on"})
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.actor_username == worker.username
    assert entry.details["shown"] == 1
    assert entry.details["elder_ids"] == [a.pk]
    assert entry.details["filters"]["category"] == "living_alone"
    assert entry.details["filters"]["focus"] is True
    assert b.pk not in entry.details["elder_ids"]


@pytest.mark.parametrize("role_level", [(Role.COMMUNITY_WORKER, 0), (Role.CITY_ADMIN, None)])
def test_list_query_count_does_not_grow_with_rows(
    tree: Tree, role_level: tuple[str, int | None], django_assert_max_num_queries: Any
) -> None:
    role, index = role_level
    area = tree.communities[0] if index == 0 else tree.city
    user = make_user(role, area)
    for i in range(30):
        widow(tree.communities[0], i)
        make_elder(tree.communities[0], name=f"家长{i}", birth_date=dt.date(1950, 1, 1 + i % 28))
    client = signed_in(user)
    client.get(reverse("elder-list"))  # warm the session
    # session, user, user's area, chosen area, area choices, rows, capped count, audit insert
    with django_assert_max_num_queries(8):
        response = client.get(
            reverse("elder-list"),
            {
                "area": tree.subdistricts[0].pk if index is None else "",
                "focus": "on",
                "category": "living_alone",
            },
        )
    assert len(response.context["rows"]) == 30


def test_export_is_masked_streamed_and_audited(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    number = new_id_number(dt.date(1940, 3, 2))
    widow = lonely_widow(tree.communities[0], id_number=number, phone="13912345678")
    parent_with_son(tree.communities[0])
    lonely_widow(tree.communities[1])
    response = signed_in(worker).get(reverse("elder-export"), {"focus": "on"})
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 2  # header and the one focus elder of her community
    assert rows[1][0] == str(widow.pk)
    assert number not in body and "13912345678" not in body
    assert widow.id_number_masked in body
    entry = AuditEntry.objects.get(action=AuditAction.EXPORT)
    assert entry.details["rows"] == 1
    assert entry.details["filters"]["focus"] is True
    assert entry.actor_username == worker.username
