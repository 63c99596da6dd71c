"""The upload page: only users who may import, only into their own area, errors in a table."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl import load_workbook

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.imports.models import ImportRun, ImportStatus
from tanfang.imports.synthetic import synthetic_id, write_csv
from tanfang.registry.models import Elder
from tests.factories import make_elder, make_tree, make_user

pytestmark = pytest.mark.django_db
URL = "/import/elders/"


def signed_in(user: Any) -> Client:
    """A signed-in client that chose English (pages ignore the browser's languages)."""
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def upload(client: Client, path: Path, **data: str) -> Any:
    with path.open("rb") as stream:
        file = SimpleUploadedFile(path.name, stream.read(), content_type="text/csv")
    return client.post(
        URL, {"file": file, "source": "居委会入户核查", "source_date": "2026-01-05", **data}
    )


def rows(community: Any, *indexes: int, **cells: str) -> list[dict[str, str]]:
    return [
        {
            "name": "王秀兰",
            "id_number": synthetic_id(i)[0],
            "community_code": community.code,
            **cells,
        }
        for i in indexes
    ]


def test_urls_and_template_download() -> None:
    tree = make_tree()
    assert reverse("import-elders") == URL
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    response = signed_in(worker).get(reverse("import-elders-template"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert workbook.worksheets[0]["C1"].value == "公民身份号码"


def test_only_roles_that_import_reach_the_page() -> None:
    tree = make_tree()
    visitor = make_user(Role.VISITOR, tree.communities[0])
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    assert signed_in(visitor).get(URL).status_code == 403
    assert signed_in(supervisor).get(URL).status_code == 403
    assert Client().get(URL).status_code == 302
    page = signed_in(worker).get(URL)
    assert page.status_code == 200 and b'name="file"' in page.content


def test_worker_imports_into_her_community(tmp_path: Path) -> None:
    tree = make_tree()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    path = write_csv(tmp_path / "census.csv", rows(tree.communities[0], 1, 2))
    response = upload(signed_in(worker), path)
    assert response.status_code == 200
    assert b'data-testid="created">2<' in response.content
    assert Elder.objects.filter(community=tree.communities[0]).count() == 2
    run = ImportRun.objects.get()
    assert (run.by, run.via, run.status, run.file_name, run.source) == (
        worker,
        "web",
        ImportStatus.SUCCEEDED,
        "census.csv",
        "居委会入户核查",
    )
    entry = AuditEntry.objects.get(action=AuditAction.IMPORT)
    assert entry.actor == worker and entry.area_code == tree.communities[0].code


def test_rows_outside_her_area_are_refused_each_with_its_row(tmp_path: Path) -> None:
    tree = make_tree()
    mine, other = tree.communities[0], tree.communities[1]
    worker = make_user(Role.COMMUNITY_WORKER, mine)
    number, birth, gender = synthetic_id(9)
    elsewhere = make_elder(other, id_number=number, birth_date=birth, gender=gender)
    path = write_csv(
        tmp_path / "mixed.csv",
        [
            *rows(mine, 1),
            *rows(other, 2),
            {"id_number": synthetic_id(9)[0], "address": "改到我这里"},
        ],
    )
    response = upload(signed_in(worker), path)
    assert response.status_code == 422
    errors = [(e.row, e.column) for e in response.context["outcome"].errors]
    assert errors == [(3, "社区代码"), (4, "公民身份号码")]
    assert f"community {other.code} is outside your area".encode() in response.content
    assert b"registered in a community outside your area" in response.content
    assert Elder.objects.count() == 1
    elsewhere.refresh_from_db()
    assert elsewhere.address == ""
    assert ImportRun.objects.get().status == ImportStatus.REJECTED


def test_subdistrict_staff_may_import_into_any_of_its_communities(tmp_path: Path) -> None:
    tree = make_tree()
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    path = write_csv(
        tmp_path / "sub.csv", [*rows(tree.communities[0], 1), *rows(tree.communities[1], 2)]
    )
    assert upload(signed_in(staff), path).status_code == 200
    assert Elder.objects.count() == 2


def test_form_errors_are_shown_without_importing(tmp_path: Path) -> None:
    tree = make_tree()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    path = write_csv(tmp_path / "a.csv", rows(tree.communities[0], 1))
    response = upload(signed_in(worker), path, source_date="2999-01-01")
    assert response.status_code == 200 and response.context["form"].errors
    assert not ImportRun.objects.exists()
