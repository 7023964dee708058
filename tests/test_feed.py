import xml.etree.ElementTree as ET

ATOM = "{http://www.w3.org/2005/Atom}"


def test_feed_lists_newest_posts(client, auth) -> None:
    auth.login()
    client.post("/create", data={"title": "A <b>bold</b> & new", "body": "**hi**", "tags": "x"})
    response = client.get("/feed.atom")
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    feed = ET.fromstring(response.data)
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["A <b>bold</b> & new", "test title"]
    assert entries[0].find(f"{ATOM}content").text.strip() == "<p><strong>hi</strong></p>"
    assert entries[0].find(f"{ATOM}id").text == "http://localhost/2"
    assert entries[0].find(f"{ATOM}category").get("term") == "x"
    assert entries[1].find(f"{ATOM}updated").text == "2018-01-01T00:00:00Z"


def test_feed_is_linked_from_pages(client) -> None:
    page = client.get("/").data
    assert b'<link rel="alternate" type="application/atom+xml"' in page
    assert b'href="/feed.atom"' in page


def test_empty_feed_is_valid(client, auth) -> None:
    auth.login()
    client.post("/1/delete")
    feed = ET.fromstring(client.get("/feed.atom").data)
    assert feed.find(f"{ATOM}entry") is None
    assert feed.find(f"{ATOM}updated").text == "1970-01-01T00:00:00Z"


def test_control_characters_already_stored_do_not_break_the_feed(client, app) -> None:
    from flaskr.db import db
    from flaskr.models import Post

    with app.app_context():  # written before the forms refused them, or by other means
        post = db.session.get(Post, 1)
        post.title, post.body = "bell\x0b\x01", "text\x1b\x00"
        db.session.commit()
    entry = ET.fromstring(client.get("/feed.atom").data).find(f"{ATOM}entry")
    assert entry.find(f"{ATOM}title").text == "bell"


def test_the_feed_is_bounded_and_kept_whatever_the_posts(client, auth, app, statements) -> None:
    """Twenty posts of 19 KB rendering to about 128 KB each made a 2.7 MB feed, never cached."""
    from flaskr.feed import ENTRY_CONTENT_BYTES, FEED_SIZE, SUMMARY_CHARACTERS

    auth.login()
    body = "[a link](https://example.com/a/long/address/to/somewhere) " * 320  # 19 KB
    for i in range(FEED_SIZE):
        response = client.post("/create", data={"title": f"long {i}", "body": body})
        assert response.status_code == 302
    client.post("/create", data={"title": "short", "body": "**short**"})
    auth.logout()
    response = client.get("/feed.atom")
    size = len(response.data)
    assert size <= FEED_SIZE * (ENTRY_CONTENT_BYTES + 1024), size
    entries = ET.fromstring(response.data).findall(f"{ATOM}entry")
    assert len(entries) == FEED_SIZE
    assert entries[0].find(f"{ATOM}content").text.strip() == "<p><strong>short</strong></p>"
    summary = entries[1].find(f"{ATOM}summary").text
    assert summary.startswith("[a link](https://example.com/a/long/address/to/somewhere) [a link]")
    assert len(summary) <= SUMMARY_CHARACTERS + 2 and summary.endswith(" …")
    assert entries[1].find(f"{ATOM}content") is None
    assert entries[1].find(f"{ATOM}link").get("href") == "http://localhost/21"
    statements.clear()
    assert client.get("/feed.atom").data == response.data  # kept by the page cache
    assert len(statements) == 1 and "content_version" in statements[0]
