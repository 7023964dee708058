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
    assert headers["Permissions-Policy"] == "geolocation=(), camera=(), microphone=()"
    assert "Strict-Transport-Security" not in headers  # plain http: no HSTS


@pytest.mark.parametrize(
    "request_args",
    ({"base_url": "https://localhost"}, {"headers": {"X-Forwarded-Proto": "https"}}),
)
def test_hsts_over_https(client, request_args) -> None:
    response = client.get("/", **request_args)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.headers.getlist("Content-Security-Policy") == [
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ]


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


def test_visitors_get_no_cookie_and_vary_on_cookie(client) -> None:
    response = client.get("/hello")
    assert "Set-Cookie" not in response.headers
    assert response.headers["Vary"] == "Cookie"


def test_vary_keeps_what_a_view_set(app) -> None:
    @app.get("/varies")
    def varies() -> tuple[str, dict[str, str]]:
        return "text", {"Vary": "Accept-Encoding"}

    assert app.test_client().get("/varies").headers["Vary"] == "Accept-Encoding, Cookie"


def test_a_new_secret_key_ends_sessions(client, auth, app) -> None:
    auth.login()
    assert b"Log Out" in client.get("/").data
    app.secret_key = "another-secret-key-for-this-test"
    assert b"Log Out" not in client.get("/").data


def test_a_remembered_cookie_still_expires_and_a_forged_one_never_passes(
    client, auth, monkeypatch
) -> None:
    import time

    import flaskr.security

    auth.login()
    assert b"Log Out" in client.get("/").data  # verified, and now remembered
    genuine = client.get_cookie("session").value
    payload, signature = genuine.rsplit(".", 1)
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    client.set_cookie("session", forged)
    assert b"Log Out" not in client.get("/").data
    client.set_cookie("session", genuine)
    assert b"Log Out" in client.get("/").data
    eight_days = time.time() + 8 * 24 * 3600  # PERMANENT_SESSION_LIFETIME is 7 days
    monkeypatch.setattr(flaskr.security.time, "time", lambda: eight_days)
    assert b"Log Out" not in client.get("/").data


def test_a_message_to_flash_shows_once(client) -> None:
    """A session holding messages (a list) is read afresh every time, never remembered: the
    message shows on the next page and then is gone, even if the old cookie comes back."""
    client.post("/auth/register", data={"username": "newcomer", "password": "a long password"})
    holding = client.get_cookie("session").value
    assert b"Now log in as newcomer" in client.get("/auth/login").data
    assert b"Now log in as newcomer" not in client.get("/auth/login").data
    client.set_cookie("session", holding)  # the cookie that still holds the message
    client.post("/auth/register", data={"username": "", "password": ""})  # flashes errors
    client.set_cookie("session", holding)
    page = client.get("/auth/login").get_data(as_text=True)
    assert page.count("Now log in as newcomer") == 1 and "Username is required" not in page
