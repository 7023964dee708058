import pytest

from flaskr.security import CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ("/", "/1", "/auth/login", "/nope", "/feed.atom", "/hello"))
def test_security_headers_on_every_response(client, path) -> None:
    headers = client.get(path).headers
    csp = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in headers  # plain http: no HSTS


def test_hsts_over_https(client) -> None:
    response = client.get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_no_redirect_to_https(client) -> None:
    assert client.get("/").status_code == 200


def test_policy_has_no_inline_allowances() -> None:
    values = " ".join(str(v) for v in CONTENT_SECURITY_POLICY.values())
    assert "unsafe" not in values


def test_pages_have_no_inline_script_or_style(client, auth) -> None:
    auth.login()
    for path in ("/", "/1", "/create", "/1/update", "/auth/register", "/nope"):
        page = client.get(path).text
        assert "<script" not in page
        assert "<style" not in page
        assert " style=" not in page
        assert " onclick=" not in page


@pytest.mark.parametrize("body", (b"0", b"[1]", b'{"title": "x"}', b"not json"))
def test_json_bodies_are_refused_with_415(client, auth, app, body) -> None:
    auth.login()
    response = client.post("/create", data=body, content_type="application/json")
    assert response.status_code == 415
    assert client.get("/2").status_code == 404
