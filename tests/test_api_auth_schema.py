"""API authentication (token and session with CSRF) and the OpenAPI schema served locally."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import URLPattern
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.api import urls as api_urls
from tests.factories import PASSWORD, lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def worker() -> Any:
    tree = make_tree()
    lonely_widow(tree.communities[0])
    return make_user(Role.COMMUNITY_WORKER, tree.communities[0], username="wang")


def issue_token(username: str, *args: str) -> str:
    out = io.StringIO()
    call_command("token", username, *args, stdout=out)
    return out.getvalue().strip()


# --------------------------------------------------------------------------- tokens


def test_token_command_issues_a_working_token(worker: Any) -> None:
    key = issue_token("wang")
    assert Token.objects.get(user=worker).key == key
    assert issue_token("wang") == key  # shown again, not replaced
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/elders/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1
    # Token requests need no CSRF token: nothing in the browser sends them on its own.
    assert (
        client.post("/api/v1/classify/", {"as_of": "2026-01-01"}, format="json").status_code == 200
    )


def test_rotated_and_revoked_tokens_stop_working(worker: Any) -> None:
    old = issue_token("wang")
    new = issue_token("wang", "--rotate")
    assert new != old
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert client.get("/api/v1/me/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert client.get("/api/v1/me/").status_code == 200
    assert issue_token("wang", "--revoke") == "revoked"
    assert client.get("/api/v1/me/").status_code == 401


def test_token_command_refuses_unknown_users_and_users_without_scope(worker: Any) -> None:
    with pytest.raises(CommandError):
        issue_token("nobody")
    make_user(Role.VISITOR, None, username="lost")
    with pytest.raises(CommandError):
        issue_token("lost")
    assert not Token.objects.filter(user__username="lost").exists()


def test_token_of_a_deactivated_user_opens_nothing(worker: Any) -> None:
    key = issue_token("wang")
    worker.is_active = False
    worker.save(update_fields=["is_active"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/elders/").status_code in (401, 403)


# --------------------------------------------------------------------------- sessions


def test_session_writes_need_the_csrf_token(worker: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.login(username="wang", password=PASSWORD)
    assert client.get("/api/v1/me/").status_code == 200
    refused = client.post(
        "/api/v1/classify/", {"as_of": "2026-01-01"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    client.get("/api/v1/me/")  # any page sets the cookie once get_token() ran; force it:
    from django.middleware.csrf import _get_new_csrf_string

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    accepted = client.post(
        "/api/v1/classify/",
        {"as_of": "2026-01-01"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=secret,
    )
    assert accepted.status_code == 200


def test_anonymous_requests_are_refused() -> None:
    client = APIClient()
    for url in (
        "/api/v1/elders/",
        "/api/v1/areas/",
        "/api/v1/me/",
        "/api/v1/schema/",
        "/api/v1/docs/",
    ):
        assert client.get(url).status_code in (401, 403), url


# --------------------------------------------------------------------------- schema


def _v1_paths() -> set[str]:
    """Every v1 route as an OpenAPI path (``<int:pk>`` → ``{id}``), schema and docs excepted."""
    paths = set()
    for pattern in api_urls.v1:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        if route in ("schema/", "docs/"):
            continue
        route = re.sub(r"<int:pk>", "{id}", route)
        route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        paths.add(f"/api/v1/{route}")
    return paths


def test_schema_is_valid_without_warnings() -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--api-version", "v1", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    assert set(schema["paths"]) == _v1_paths()


def test_schema_is_served_with_request_and_response_shapes(worker: Any) -> None:
    client = APIClient()
    client.force_login(worker)
    response = client.get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == _v1_paths()
    create = schema["paths"]["/api/v1/elders/"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    required = schema["components"]["schemas"][body.rsplit("/", 1)[1]]["required"]
    assert set(required) == {"id_number", "name", "community_code"}
    detail = schema["components"]["schemas"]["ElderDetail"]["properties"]
    assert "id_number_masked" in detail
    assert not [name for name in detail if "cipher" in name or "hash" in name]
    assert {"cookieAuth", "tokenAuth"} <= set(schema["components"]["securitySchemes"])


def test_docs_page_uses_local_assets_only(worker: Any) -> None:
    client = Client()
    client.force_login(worker)
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("swagger-ui-dist" in a for a in assets)
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))]
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    served = client.get(bundle)
    assert served.status_code == 200
    # Reading the streamed file to its end closes it.
    assert b"SwaggerUIBundle" in b"".join(served.streaming_content)
