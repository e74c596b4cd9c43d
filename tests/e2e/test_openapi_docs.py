"""`/docs` and `/redoc` load nothing from outside the server; the OpenAPI document can authenticate
(both schemes, as alternatives, on every operation that needs a caller) and documents every operation
(summary, description, request examples that the API accepts)."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from pydantic import BaseModel

from tests.e2e.test_api_harness import Server, running_server
from tradehall.api import schemas

EITHER: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("openapi-docs")
    with running_server(data_dir) as running:
        yield running


@pytest.fixture(scope="module")
def document(live: Server) -> dict[str, Any]:
    response = httpx.get(live.url + "/openapi.json", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


class _Links(HTMLParser):
    """Every URL a page makes the browser load: `src` and `href` attributes, and ReDoc's `spec-url`."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value is not None:
                self.urls.append((tag, value))


def _links(html: str) -> list[tuple[str, str]]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


_ASSET_TYPES = {
    "script": ("text/javascript", "application/javascript"),
    "link": ("text/css", "image/png"),  # the stylesheet and the favicon
    "redoc": ("application/json",),
}


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (
            "/docs",
            {"/static-docs/swagger-ui-bundle.js", "/static-docs/swagger-ui.css", "/static-docs/favicon.png"},
        ),
        ("/redoc", {"/static-docs/redoc.standalone.js", "/static-docs/favicon.png", "/openapi.json"}),
    ],
)
def test_docs_pages_load_every_asset_from_the_server_itself(
    live: Server, page: str, expected: set[str]
) -> None:
    response = httpx.get(live.url + page, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html  # no CDN, no fonts, no remote favicon
    links = _links(html)
    assert {url for _, url in links} == expected
    for tag, url in links:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        asset = httpx.get(urljoin(live.url, url), timeout=10)
        assert asset.status_code == 200, url
        content_type = asset.headers["content-type"].split(";")[0]
        assert content_type in _ASSET_TYPES[tag], (url, content_type)
        assert len(asset.content) > 100, url  # not an empty placeholder


def test_swagger_ui_reads_the_local_document_and_asks_no_online_validator(live: Server) -> None:
    html = httpx.get(live.url + "/docs", timeout=10).text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html  # Swagger UI would otherwise send the document to swagger.io
    assert '"persistAuthorization": true' in html


def test_the_bundled_assets_are_the_real_builds(live: Server) -> None:
    bundle = httpx.get(live.url + "/static-docs/swagger-ui-bundle.js", timeout=10).text
    redoc = httpx.get(live.url + "/static-docs/redoc.standalone.js", timeout=10).text
    assert "SwaggerUIBundle" in bundle and len(bundle) > 500_000
    assert "Redoc" in redoc and len(redoc) > 500_000
    assert httpx.get(live.url + "/static-docs/nothing.js", timeout=10).status_code == 404


def test_the_document_declares_a_bearer_jwt_and_an_api_key_header(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT"
    assert schemes["apiKeyAuth"] == {
        **schemes["apiKeyAuth"],
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/orders"),
        ("delete", "/orders/{order_id}"),
        ("get", "/accounts"),
        ("get", "/auth/me"),
        ("post", "/auth/api-keys"),
        ("post", "/admin/markets"),
        ("get", "/admin/settlements"),
        ("post", "/positions/{market}/close"),
    ],
)
def test_operations_that_need_a_caller_accept_either_scheme(
    document: dict[str, Any], method: str, path: str
) -> None:
    assert document["paths"][path][method]["security"] == EITHER


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/markets"),
        ("get", "/markets/{symbol}/book"),
        ("get", "/tiers"),
        ("post", "/auth/token"),
        ("post", "/auth/register"),
        ("get", "/health"),
        ("get", "/metrics"),
    ],
)
def test_public_operations_name_no_scheme(document: dict[str, Any], method: str, path: str) -> None:
    assert "security" not in document["paths"][path][method]


def test_every_operation_is_public_or_accepts_both_schemes(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("security", EITHER) == EITHER, (method, path)
            if path.startswith("/admin/"):
                assert operation.get("security") == EITHER, (method, path)


def test_what_the_schemes_describe_authenticates(live: Server, document: dict[str, Any]) -> None:
    """The headers Swagger UI builds from the two schemes are the ones the server accepts."""
    schemes = document["components"]["securitySchemes"]
    admin = live.admin()
    token = admin.auth_token
    assert token is not None
    key = httpx.post(
        live.url + "/auth/api-keys",
        json={"label": "docs"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()["api_key"]
    bearer = {"Authorization": f"{schemes['bearerAuth']['scheme'].capitalize()} {token}"}
    api_key = {schemes["apiKeyAuth"]["name"]: key}
    for headers in (bearer, api_key):
        response = httpx.get(live.url + "/auth/me", headers=headers, timeout=10)
        assert response.status_code == 200, headers.keys()
        assert response.json()["username"] == "admin"
    assert httpx.get(live.url + "/auth/me", timeout=10).status_code == 401


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    operations = list(_operations(document))
    assert len(operations) >= 40
    missing = [
        f"{method.upper()} {path}"
        for method, path, operation in operations
        if not operation.get("summary", "").strip() or not operation.get("description", "").strip()
    ]
    assert missing == []


def _schema_refs(schema: dict[str, Any]) -> list[str]:
    refs = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
    for option in schema.get("anyOf", ()):
        refs.extend(_schema_refs(option))
    return refs


def test_every_request_body_has_examples_the_api_accepts(document: dict[str, Any]) -> None:
    components = document["components"]["schemas"]
    bodies = 0
    for method, path, operation in _operations(document):
        body = operation.get("requestBody")
        if body is None:
            continue
        bodies += 1
        for media_type, media in body["content"].items():
            refs = _schema_refs(media["schema"])
            assert refs, (method, path)
            in_schema = [example for name in refs for example in components[name].get("examples", ())]
            in_media = [entry["value"] for entry in media.get("examples", {}).values()]
            assert in_media or "example" in media, (method, path, media_type)
            assert in_media == in_schema, (method, path)
            for name in refs:
                model = getattr(schemas, name)
                assert isinstance(model, type) and issubclass(model, BaseModel)
                for example in components[name]["examples"]:
                    model.model_validate(example)  # a copied example is a valid request
            summaries = [entry["summary"] for entry in media["examples"].values()]
            assert all(summaries) and len(set(summaries)) == len(summaries), (method, path, summaries)
    assert bodies >= 14


def test_an_example_order_is_placed_as_documented(live: Server, document: dict[str, Any]) -> None:
    """The first order example, with a real account in it, is accepted by the server (201)."""
    examples = document["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    first = dict(examples["example1"]["value"])
    admin = live.admin()
    admin.create_market(
        symbol=first["market"], kind="spot", base="BTC", quote="USD", tick_size="0.5", lot_size="0.001"
    )
    client, account_id = live.trader()
    first["account_id"] = account_id
    token = client.auth_token
    response = httpx.post(
        live.url + "/orders", json=first, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert (order["market"], order["side"], order["type"], order["status"]) == (
        "BTC-USD",
        "buy",
        "limit",
        "open",
    )
