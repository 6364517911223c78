"""Security headers, no inline code for the policy to block, escaped form input, no version leak."""

import urllib.error
import urllib.request

import html5lib
import pytest

from mlservice.security import HEADERS, SecurityHeaders
from scripts.live_server import running_server
from tests.values import FEATURE_NAMES

HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def parse(page: str):
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def simple_get_urls(app) -> list[str]:
    """Every GET route without URL parameters: new pages are checked without editing this file."""
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments and rule.endpoint != "static"
    )


def responses(client):
    for url in simple_get_urls(client.application):
        yield url, client.get(url)
    card = client.get("/api/v1/model").get_json()
    label = next(iter(card["examples"]))
    yield f"/?example={label}", client.get("/", query_string={"example": label})
    yield "POST / (bad value)", client.post("/", data=dict.fromkeys(FEATURE_NAMES, "x"))
    yield "/missing (404 page)", client.get("/missing", headers={"Accept": "text/html"})
    yield "/api/v1/missing (404 JSON)", client.get("/api/v1/missing")


def test_the_checked_routes_include_the_page_and_the_api(app):
    urls = simple_get_urls(app)
    assert "/" in urls
    assert "/api/v1/openapi.json" in urls


def test_every_response_carries_the_security_headers(client):
    for url, response in responses(client):
        policy = response.headers.get("Content-Security-Policy", "")
        directives = {part.strip() for part in policy.split(";")}
        assert "default-src 'self'" in directives, url
        assert "frame-ancestors 'none'" in directives, url
        assert "unsafe-inline" not in policy, url
        assert "unsafe-eval" not in policy, url
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
        assert response.headers.get("Referrer-Policy") == "no-referrer", url


def test_a_response_that_sets_a_security_header_keeps_its_own(app):
    @app.get("/framed")
    def framed():
        return "", 204, {"x-frame-options": "SAMEORIGIN"}

    response = app.test_client().get("/framed")
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Referrer-Policy") == ["no-referrer"]
    assert len(response.headers.getlist("Content-Security-Policy")) == 1


@pytest.mark.parametrize(
    ("sent", "added"),
    [
        ([("Content-Type", "text/plain")], list(HEADERS.items())),
        (
            [("Content-Type", "text/plain"), ("x-frame-options", "SAMEORIGIN")],
            [h for h in HEADERS.items() if h[0] != "X-Frame-Options"],
        ),
        (
            [("x-frame-options", "SAMEORIGIN")],
            [h for h in HEADERS.items() if h[0] != "X-Frame-Options"],
        ),
    ],
    ids=["none of its own", "one of its own", "only its own"],
)
def test_the_middleware_passes_start_response_on_as_called(sent, added):
    # PEP 3333: an application reporting an error passes exc_info, which the server needs.
    error = (ValueError, ValueError("x"), None)
    calls = []

    def app(environ, start_response):
        start_response("500 INTERNAL SERVER ERROR", sent, error)
        return [b"x"]

    body = SecurityHeaders(app)({}, lambda *args: calls.append(args))
    assert body == [b"x"]
    [(status, headers, exc_info)] = calls
    assert (status, exc_info) == ("500 INTERNAL SERVER ERROR", error)
    assert headers == [*sent, *added]


def test_html_pages_have_no_inline_code_the_policy_would_block(client):
    pages = [(url, r) for url, r in responses(client) if r.mimetype == "text/html"]
    assert len(pages) >= 4  # the page, an example, a form error, the 404 page
    for url, response in pages:
        tree = parse(response.get_data(as_text=True))
        for script in tree.iter("script"):
            assert script.get("src"), f"inline <script> on {url}"
        assert not list(tree.iter("style")), f"<style> element on {url}"
        for element in tree.iter():
            inline = [a for a in element.attrib if a == "style" or a.startswith("on")]
            assert not inline, f"inline {inline} on <{element.tag}> of {url}"


def test_form_input_is_escaped_on_output(client):
    response = client.post("/", data={name: HOSTILE for name in FEATURE_NAMES})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    tree = parse(page)
    # The value comes back as text inside the attribute, never as markup.
    assert [i.get("value") for i in tree.iter("input")] == [HOSTILE] * len(FEATURE_NAMES)
    assert not [s for s in tree.iter("script") if not s.get("src")]
    assert not list(tree.iter("img"))
    assert "&lt;script&gt;" in page


def test_unknown_example_name_is_escaped_on_the_error_page(client):
    response = client.get("/", query_string={"example": HOSTILE}, headers={"Accept": "text/html"})
    assert response.status_code == 404
    tree = parse(response.get_data(as_text=True))
    assert not list(tree.iter("img"))
    assert HOSTILE in "".join(tree.find(".//main").itertext())


@pytest.fixture(scope="module")
def live_url():
    with running_server(workers=1) as url:
        yield url


def test_production_server_reveals_no_versions(live_url):
    for path in ("/", "/healthz", "/api/v1/missing"):
        request = urllib.request.Request(f"{live_url}{path}")
        try:
            response = urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            assert response.headers.get("Server") == "gunicorn", path
            assert "X-Powered-By" not in response.headers
            assert response.headers.get("Content-Security-Policy"), path
