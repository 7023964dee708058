"""Property-based tests: whatever arrives at any route, the answer is never a 5xx, a refusal
is a meaningful 4xx, and a refused request changes nothing in the database."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from toolkit.apps import make_app
from toolkit.images import image_bytes

ROUTES = [
    "/",
    "/?q={}&page={}",
    "/tag/{}",
    "/{}",
    "/{}/update",
    "/{}/delete",
    "/{}/like",
    "/{}/comment",
    "/{}/image",
    "/create",
    "/auth/register",
    "/auth/login",
    "/auth/logout",
    "/auth/passkeys",
    "/auth/passkeys/add/options",
    "/auth/passkeys/add",
    "/auth/passkeys/remove",
    "/auth/passkeys/sign-in/options",
    "/auth/passkeys/sign-in",
    "/auth/passkeys/second-step",
    "/feed.atom",
    "/hello",
    "/healthz",
    "/readyz",
    "/admin/isolation",
]
FIELDS = ["username", "password", "title", "body", "tags", "image", "csrf_token", "page", "q"]
FIELDS += ["credential", "name", "current", "passkey"]  # the passkey pages' (passkeys.py)
MEANINGFUL = {400, 403, 404, 405, 409, 413, 415, 429}
#: Bookkeeping a refused login is meant to write (throttling), so not "data".
NOT_DATA = {"login_failure"}

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
huge = st.integers(1_000, 300_000).map(lambda n: "x" * n)
ids = st.one_of(
    st.integers(-5, 5), st.integers(2**31 - 2, 2**64), text.filter(lambda s: "/" not in s)
)
values = st.one_of(text, huge, st.sampled_from(["", " ", "1", "-1", "test", "\0", "%00"]))
fields = st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=8)
files = st.one_of(
    st.binary(max_size=2_000),
    st.sampled_from([image_bytes(), image_bytes("GIF"), image_bytes("PNG")[:30], b""]),
)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fuzz")
    app = make_app(tmp, ISOLATION_PAGE=True)
    app.test_cli_runner().invoke(args=["make-admin", "test"])
    return app, Path(app.config["DATABASE_URL"].removeprefix("sqlite:///"))


def snapshot(database: Path) -> str:
    """A digest of every row of every data table."""
    connection = sqlite3.connect(database)
    try:
        digest = hashlib.sha256()
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        for (table,) in sorted(tables.fetchall()):
            if table not in NOT_DATA:
                rows = connection.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
                digest.update(repr((table, rows)).encode())
        return digest.hexdigest()
    finally:
        connection.close()


def check(app, database: Path, response) -> None:
    event(f"status {response.status_code}")
    assert response.status_code < 500, response.data[:500]
    if response.status_code >= 400:
        assert response.status_code in MEANINGFUL, response.status_code


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    a=ids,
    b=ids,
    method=st.sampled_from(["GET"] * 3 + ["POST"] * 6 + ["PUT", "DELETE", "PATCH"]),
    data=fields,
    logged_in=st.booleans(),
    as_json=st.booleans(),
)
def test_form_fields_never_cause_a_5xx(
    fuzz_app, route, a, b, method, data, logged_in, as_json
) -> None:
    app, database = fuzz_app
    client = app.test_client()
    if logged_in:
        with client.session_transaction() as session:
            session["user_id"] = 1
    path = route.format(a, b)
    before = snapshot(database)
    headers = {"Accept": "application/json"} if as_json else {}
    response = client.open(path, method=method, data=MultiDict(data), headers=headers)
    check(app, database, response)
    if response.status_code >= 400:
        assert snapshot(database) == before, f"{method} {path} was refused but wrote data"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(["/create", "/1/update", "/1/comment", "/auth/login"]),
    title=values,
    upload=files,
    filename=text,
    repeat=st.booleans(),
)
def test_multipart_uploads_never_cause_a_5xx(
    fuzz_app, route, title, upload, filename, repeat
) -> None:
    app, database = fuzz_app
    client = app.test_client()
    with client.session_transaction() as session:
        session["user_id"] = 1
    data = MultiDict([("title", title), ("body", "b"), ("image", (io.BytesIO(upload), filename))])
    if repeat:
        data.add("image", (io.BytesIO(upload), "second.png"))
        data.add("title", "second title")
    before = snapshot(database)
    response = client.post(route, data=data, content_type="multipart/form-data")
    check(app, database, response)
    if response.status_code >= 400:
        assert snapshot(database) == before


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(["/create", "/1/update", "/1/comment", "/auth/login", "/1/like"]),
    body=st.binary(max_size=3_000),
    content_type=st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data; boundary=",
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "application/octet-stream",
            "",
        ]
    ),
)
def test_malformed_bodies_never_cause_a_5xx(fuzz_app, route, body, content_type) -> None:
    app, database = fuzz_app
    client = app.test_client()
    with client.session_transaction() as session:
        session["user_id"] = 1
    before = snapshot(database)
    response = client.post(route, data=body, headers={"Content-Type": content_type})
    check(app, database, response)
    if response.status_code >= 400:
        assert snapshot(database) == before
