import pytest

from toolkit.apps import make_app


@pytest.mark.parametrize(
    "url",
    (
        "/?q=%00",
        "/?q=a%00b",  # SQLite's full-text search took this for a database outage (503)
        "/tag/a%00",
        "/%00",
        "/auth/login?next=%00",
        "/?%00=1",
    ),
)
def test_nul_in_the_address_is_a_400(client, url) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.data


def test_nul_in_a_form_is_a_400_and_changes_nothing(client, auth) -> None:
    auth.login()
    response = client.post("/create", data={"title": "a\x00b", "body": ""})
    assert response.status_code == 400
    assert b"NUL" in response.data
    assert client.get("/2").status_code == 404


@pytest.mark.parametrize("page", ("99999999999999999999", "10000001", "0", "-1"))
def test_page_numbers_out_of_range_are_404s(client, page) -> None:
    assert client.get(f"/?page={page}").status_code == 404
    assert client.get(f"/?q=test&page={page}").status_code == 404


def test_control_characters_in_a_search_are_ignored(client) -> None:
    response = client.get("/?q=test%01%1b")
    assert response.status_code == 200
    assert b"test title" in response.data


def test_pages_for_a_logged_in_user_are_private(client, auth) -> None:
    assert "private" not in client.get("/").headers.get("Cache-Control", "")
    auth.login()
    for url in ("/", "/1", "/create", "/feed.atom"):
        assert "private" in client.get(url).headers["Cache-Control"]
    assert client.get("/1/image").status_code == 404


def test_a_page_for_a_visitor_with_a_session_is_private(client) -> None:
    with client.session_transaction() as session:  # a message waiting to be flashed
        session["_flashes"] = [("message", "for this visitor only")]
    response = client.get("/")
    assert b"for this visitor only" in response.data
    assert "private" in response.headers["Cache-Control"]


def test_host_names_come_from_configuration(tmp_path) -> None:
    client = make_app(tmp_path, TRUSTED_HOSTS=["blog.example"]).test_client()
    assert client.get("/", headers={"Host": "blog.example"}).status_code == 200
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/feed.atom", headers={"Host": "evil.example"}).status_code == 400
