"""A person's visits in a real browser: Debian's Chromium, driven by Playwright, against flaskr
served by gunicorn with the README's flags. Every page is watched for console errors and
Content Security Policy violations; the screenshots the README shows are taken here
(FLASKR_SCREENSHOTS=1, see scripts/screenshots). The server and browser fixtures, shared with
test_passkeys.py, are in conftest.py."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, expect

from toolkit.browser import (
    PHONE,
    Site,
    focus_by_tab,
    focus_outline,
    horizontal_overflow,
    picture,
    writes_docs,
)
from toolkit.servers import flask
from toolkit.visitors import Visitor

PASSWORD = "correct horse battery"

#: Older posts by another author, enough for a second page (five posts a page).
EARLIER_POSTS = [
    ("Notes from the gunicorn upgrade", "Three workers, a **120 s** timeout, and the access "
     "log on stdout. Nothing else changed.", "gunicorn, ops"),
    ("Why we keep SQLite until we can't", "One file, no daemon, backups with `cp`. When "
     "writers queue up we move to PostgreSQL.", "sqlite, databases"),
    ("A checklist for the first deploy", "- a real secret key\n- `init-db` before start\n"
     "- nginx in front, `FLASKR_PROXY_FIX=1`", "ops, checklist"),
    ("Markdown everywhere", "Posts *and* comments take Markdown. Raw HTML is dropped, "
     "links get `rel=nofollow`.", "markdown"),
    ("Reading the Atom feed on a phone", "Any feed reader finds the feed from the page "
     "itself: no need to copy a URL.", "feeds"),
    ("Keyboard first", "Every form works with **Tab** and **Enter**, and the focus is "
     "always visible.", "accessibility"),
]  # fmt: skip
POST_TITLE = "Sunrise over the harbour"
POST_BODY = "Up at five for this one.\n\n**Worth it**: the light lasted *ten minutes*."
POST_TAGS = "Photos, travel"


def seed_earlier_posts(site: Site) -> None:
    """Another author's posts, written over plain HTTP before the browser visit starts."""
    bob = Visitor(site.base)
    bob.register_and_login("bob", PASSWORD)
    for i, (title, body, tags) in enumerate(EARLIER_POSTS):
        image = picture(sky=("#023e8a", "#90e0ef"), land=("#1b4332", "#52b788")) if i == 4 else None
        bob.create_post(title, body, tags, image)


def log_out(page: Page, site: Site) -> None:
    """The tutorial's link, then the button of the page it opens (a GET alone logs nobody
    out: an image in someone's post could make it)."""
    page.get_by_role("link", name="Log Out").click()
    expect(page).to_have_url(site.url("/auth/logout"))
    page.get_by_role("button", name="Log Out").click()
    expect(page).to_have_url(site.url("/"))


def register_and_log_in(page: Page, site: Site, username: str) -> None:
    page.goto(site.url("/"))
    page.get_by_role("link", name="Register").click()
    expect(page).to_have_url(site.url("/auth/register"))
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page).to_have_url(site.url("/auth/login"))
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log In").click()
    expect(page).to_have_url(site.url("/"))
    expect(page.locator("nav").first).to_contain_text(username)
    expect(page.get_by_role("link", name="Log Out")).to_be_visible()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_register_write_like_comment_search_page_through_and_log_out(
    site: Site, open_page, shots: Path, javascript: bool
) -> None:
    """The whole visit, once as usual and once with JavaScript off: every feature works
    without it."""
    seed_earlier_posts(site)
    with open_page(java_script_enabled=javascript) as (page, _):
        register_and_log_in(page, site, "alice")

        # Write a post with an image and tags; the form says what it accepts.
        page.get_by_role("link", name="New").click()
        expect(page).to_have_url(site.url("/create"))
        expect(page.locator("#body-hint")).to_contain_text("Markdown")
        expect(page.locator("#image-hint")).to_contain_text("5 MB")
        expect(page.get_by_label("Body", exact=True)).to_have_attribute(
            "aria-describedby", "body-hint"
        )
        page.get_by_label("Title", exact=True).fill(POST_TITLE)
        page.get_by_label("Body", exact=True).fill(POST_BODY)
        page.get_by_label("Tags", exact=True).fill(POST_TAGS)
        page.get_by_label("Image", exact=True).set_input_files(
            {"name": "sunrise.png", "mimeType": "image/png", "buffer": picture()}
        )
        page.get_by_role("button", name="Save").click()

        # The index: newest first, five a page, with its tags and counts.
        expect(page).to_have_url(site.url("/"))
        posts = page.locator("article.post")
        expect(posts).to_have_count(5)
        first = posts.first
        expect(first.get_by_role("heading")).to_have_text(POST_TITLE)
        expect(first).to_contain_text("by alice on")
        expect(first.locator(".tags")).to_have_text(re.compile(r"#photos\s*#travel"))
        expect(first.locator(".body strong")).to_have_text("Worth it")
        expect(first.locator(".counts")).to_have_text("0 likes, 0 comments")
        expect(first.locator("img.thumb")).to_be_visible()

        # Page through: next, then previous.
        page.get_by_role("link", name="Next").click()
        expect(page).to_have_url(site.url("/?page=2"))
        expect(posts).to_have_count(2)
        expect(posts.last.get_by_role("heading")).to_have_text(EARLIER_POSTS[0][0])
        expect(page.get_by_role("link", name="Next")).to_have_count(0)
        page.get_by_role("link", name="Previous").click()
        expect(page).to_have_url(site.url("/"))
        expect(posts).to_have_count(5)
        expect(page.get_by_role("link", name="Previous")).to_have_count(0)

        # The post's own page: the image loads, like it, comment on it.
        page.get_by_role("link", name=POST_TITLE).click()
        expect(page).to_have_url(re.compile(re.escape(site.base) + r"/\d+$"))
        post_url = page.url
        expect(page).to_have_title(f"{POST_TITLE} - Flaskr")
        image = page.get_by_role("img", name=f"Image for {POST_TITLE}")
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("img => img.naturalWidth") == 1200
        likes = page.locator(".likes")
        expect(likes).to_contain_text("0 likes")
        likes.get_by_role("button", name="Like").click()
        expect(page).to_have_url(post_url)
        expect(likes.locator("span")).to_have_text("1 like")
        expect(likes.get_by_role("button")).to_have_text("Unlike")
        expect(page.locator(".comment")).to_have_count(0)
        page.get_by_label("Comment", exact=True).fill("What a *view*.")
        page.get_by_role("button", name="Comment").click()
        expect(page).to_have_url(post_url + "#comments")
        comment = page.locator(".comment")
        expect(comment).to_have_count(1)
        expect(comment).to_contain_text("alice on")
        expect(comment.locator("em")).to_have_text("view")
        if javascript:
            page.screenshot(path=shots / "post-desktop.png", full_page=True)

        # A tag page lists it.
        page.get_by_role("link", name="#travel").click()
        expect(page).to_have_url(site.url("/tag/travel"))
        expect(page.get_by_role("heading", level=1, name="Posts tagged #travel")).to_be_visible()
        expect(posts).to_have_count(1)
        expect(posts.first.locator(".counts")).to_have_text("1 like, 1 comment")

        # Search from the box in the header, submitted with Enter: the box keeps the query.
        search = page.get_by_role("searchbox", name="Search titles")
        search.fill("harbour")
        search.press("Enter")
        expect(page).to_have_url(site.url("/?q=harbour"))
        expect(search).to_have_value("harbour")
        expect(page.locator(".content > header h1")).to_have_text('Posts matching "harbour"')
        expect(posts).to_have_count(1)
        expect(posts.first.get_by_role("heading")).to_have_text(POST_TITLE)
        search.fill("no such thing")
        search.press("Enter")
        expect(search).to_have_value("no such thing")
        expect(page.locator(".empty")).to_have_text('No post title contains "no such thing".')

        # The feed: the page announces it, and it holds the post.
        feed_link = page.locator('head link[rel="alternate"][type="application/atom+xml"]')
        expect(feed_link).to_have_count(1)
        feed_url = feed_link.evaluate("link => link.href")
        assert feed_url == site.url("/feed.atom")
        feed = page.request.get(feed_url)
        assert feed.ok and feed.headers["content-type"].startswith("application/atom+xml")
        assert POST_TITLE in feed.text()

        page.goto(site.url("/"))
        if javascript:
            page.screenshot(path=shots / "index-desktop.png")

        # Log out: the header offers logging in again, writing needs it.
        log_out(page, site)
        expect(page.get_by_role("link", name="Log In")).to_be_visible()
        expect(page.get_by_role("link", name="New")).to_have_count(0)
        page.goto(post_url)
        expect(page.locator(".likes").get_by_role("button")).to_have_count(0)
        expect(page.locator("#comments")).to_contain_text("Log in to like or comment.")
        page.goto(site.url("/create"))
        expect(page).to_have_url(site.url("/auth/login"))


def test_form_errors_are_shown_next_to_their_field_and_keep_what_was_typed(
    site: Site, open_page
) -> None:
    with open_page() as (page, console):
        register_and_log_in(page, site, "carol")
        console.expect_status(site.url("/create"), 400)
        page.goto(site.url("/create"))
        page.get_by_label("Title", exact=True).fill("Half-finished thoughts")
        page.get_by_label("Body", exact=True).fill("Some *typed* text\nover two lines.")
        page.get_by_label("Tags", exact=True).fill("fine, not fine!")
        page.get_by_role("button", name="Save").click()

        tags = page.get_by_label("Tags", exact=True)
        expect(tags).to_have_attribute("aria-invalid", "true")
        error = page.locator(".field", has=tags).locator(".field-error")
        expect(error).to_have_text(
            "Tag 'not fine!' must be at most 32 letters, digits, '-' or '_'."
        )
        expect(error).to_have_id("tags-error")
        expect(tags).to_have_attribute("aria-describedby", re.compile(r"\btags-error\b"))
        expect(page.get_by_label("Title", exact=True)).not_to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Title", exact=True)).to_have_value("Half-finished thoughts")
        expect(page.get_by_label("Body", exact=True)).to_have_value(
            "Some *typed* text\nover two lines."
        )
        expect(tags).to_have_value("fine, not fine!")

        # Fix the tags, attach something that is not an image: its error sits by the image.
        tags.fill("fine, thoughts")
        page.get_by_label("Image", exact=True).set_input_files(
            {"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture at all"}
        )
        page.get_by_role("button", name="Save").click()
        image = page.get_by_label("Image", exact=True)
        expect(image).to_have_attribute("aria-invalid", "true")
        expect(page.locator(".field", has=image).locator(".field-error")).to_have_text(
            "The file is not a JPEG, PNG, GIF or WebP image."
        )
        expect(tags).to_have_value("fine, thoughts")
        expect(page.get_by_label("Title", exact=True)).to_have_value("Half-finished thoughts")
        expect(page.locator(".field-error")).to_have_count(1)

        # The same on the login form, whose errors are flashed above it.
        console.expect_status(site.url("/auth/login"), 400)
        log_out(page, site)
        page.get_by_role("link", name="Log In").click()
        page.get_by_label("Username", exact=True).fill("carol")
        page.get_by_label("Password", exact=True).fill("wrong password")
        page.get_by_role("button", name="Log In").click()
        expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
        expect(page.get_by_label("Username", exact=True)).to_have_value("carol")


def test_error_pages_are_friendly_and_in_the_layout(site: Site, open_page) -> None:
    seed_earlier_posts(site)
    with open_page() as (page, console):
        missing = site.url("/no/such/page")
        console.expect_status(missing, 404)
        response = page.goto(missing)
        assert response is not None and response.status == 404
        expect(page).to_have_title("404 Not Found - Flaskr")
        expect(page.get_by_role("heading", level=1, name="404 Not Found")).to_be_visible()
        expect(page.get_by_role("link", name="Flaskr")).to_be_visible()  # the site's header
        expect(page.get_by_role("searchbox", name="Search titles")).to_be_visible()
        expect(page.locator("body")).not_to_contain_text("Traceback")
        page.get_by_role("link", name="Back to the posts").click()
        expect(page).to_have_url(site.url("/"))

        missing_post = site.url("/999")
        console.expect_status(missing_post, 404)
        page.goto(missing_post)
        expect(page.locator(".error-description")).to_have_text("Post id 999 doesn't exist.")

        # Someone else's post cannot be edited: 403, in the layout too.
        register_and_log_in(page, site, "dave")
        page.get_by_role("link", name=EARLIER_POSTS[-1][0]).click()
        expect(page).to_have_url(re.compile(re.escape(site.base) + r"/\d+$"))
        expect(page.get_by_role("link", name="Edit")).to_have_count(0)
        forbidden = page.url + "/update"
        console.expect_status(forbidden, 403)
        response = page.goto(forbidden)
        assert response is not None and response.status == 403
        expect(page.get_by_role("heading", level=1, name="403 Forbidden")).to_be_visible()
        expect(page.get_by_role("link", name="Log Out")).to_be_visible()

        beyond = site.url("/?page=9")
        console.expect_status(beyond, 404)
        page.goto(beyond)
        expect(page.get_by_role("heading", level=1, name="404 Not Found")).to_be_visible()


def test_keyboard_alone_logs_in_with_the_focus_always_visible(site: Site, open_page) -> None:
    Visitor(site.base).register_and_login("erin", PASSWORD)
    with open_page() as (page, _):
        page.goto(site.url("/auth/login"))
        focus_by_tab(page, "a.skip-link", limit=1)  # the first stop skips the header
        expect(page.locator("a.skip-link")).to_be_in_viewport()
        assert focus_outline(page).startswith("solid")
        presses = focus_by_tab(page, "#username")
        assert presses <= 10, f"{presses} Tab presses to reach the first field"
        assert focus_outline(page).startswith("solid")
        page.keyboard.type("erin")
        page.keyboard.press("Tab")
        expect(page.get_by_label("Password", exact=True)).to_be_focused()
        assert focus_outline(page).startswith("solid")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page).to_have_url(site.url("/"))
        expect(page.get_by_role("link", name="Log Out")).to_be_visible()

        # The skip link jumps past the header: the next Tab is inside the content.
        page.goto(site.url("/"))
        focus_by_tab(page, "a.skip-link", limit=1)
        page.keyboard.press("Enter")
        expect(page).to_have_url(site.url("/#content"))
        focus_by_tab(page, ".content a.action", limit=1)  # "New", the first link after it
        page.keyboard.press("Enter")
        expect(page).to_have_url(site.url("/create"))


def test_phone_layout_never_scrolls_sideways(site: Site, open_page, shots: Path) -> None:
    seed_earlier_posts(site)
    alice = Visitor(site.base)
    alice.register_and_login("alice", PASSWORD)
    alice.create_post(POST_TITLE, POST_BODY, POST_TAGS, picture())
    post_id = alice.post_id(POST_TITLE)
    with open_page(**PHONE) as (page, console):
        page.goto(site.url("/auth/login"))
        page.get_by_label("Username", exact=True).fill("alice")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log In").click()
        expect(page).to_have_url(site.url("/"))
        expect(page.locator("article.post img.thumb").first).to_have_js_property("complete", True)
        assert horizontal_overflow(page) == 0
        page.screenshot(path=shots / "index-phone.png")

        # Every kind of page fits, even with a word longer than the screen is wide.
        long_word = "Supercalifragilisticexpialidocious" * 3
        alice.create_post(
            "An unbroken " + long_word,
            f"`{long_word}`\n\n```\n{long_word} {long_word}\n```\n\n[a link]({site.base}/)",
            "a" * 32,
        )
        long_id = alice.post_id("An unbroken " + long_word)
        missing = site.url("/no/such/page")
        console.expect_status(missing, 404)
        for path in ("/", "/?page=2", f"/{post_id}", f"/{long_id}", "/create", "/tag/photos",
                     f"/?q={long_word}", f"/{long_id}/update", "/auth/login", "/no/such/page"):  # fmt: skip
            page.goto(site.url(path))
            expect(page.locator("main")).to_be_visible()
            overflow = horizontal_overflow(page)
            assert overflow == 0, f"{path} is {overflow}px too wide for a phone"
            search = page.get_by_role("searchbox", name="Search titles")
            box = search.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        log_out(page, site)
        expect(page.get_by_role("link", name="Log In")).to_be_visible()
        assert horizontal_overflow(page) == 0


def test_markdown_preview_shows_the_post_without_saving_it(site: Site, open_page) -> None:
    with open_page() as (page, _):
        register_and_log_in(page, site, "frank")
        page.goto(site.url("/create"))
        preview = page.get_by_role("button", name="Preview")
        page.get_by_label("Title", exact=True).fill("Draft")
        page.get_by_label("Body", exact=True).fill("Some **bold** words\n\n- one\n- two")
        page.get_by_label("Tags", exact=True).fill("drafts")
        preview.click()
        expect(page).to_have_url(site.url("/create"))
        shown = page.locator(".preview")
        expect(shown.locator("strong")).to_have_text("bold")
        expect(shown.locator("li")).to_have_count(2)
        expect(page.get_by_label("Title", exact=True)).to_have_value("Draft")
        expect(page.get_by_label("Body", exact=True)).to_have_value(
            "Some **bold** words\n\n- one\n- two"
        )
        expect(page.get_by_label("Tags", exact=True)).to_have_value("drafts")
        page.goto(site.url("/"))
        expect(page.locator(".empty")).to_have_text("No posts yet.")  # nothing was saved

        # Save (the first button, so also what Enter does) still saves.
        page.goto(site.url("/create"))
        page.get_by_label("Title", exact=True).fill("Draft")
        page.get_by_label("Title", exact=True).press("Enter")
        expect(page).to_have_url(site.url("/"))
        expect(page.locator("article.post")).to_have_count(1)


def test_screenshots_are_written_where_asked(shots: Path) -> None:
    """Without FLASKR_SCREENSHOTS a test run must not touch docs/screenshots."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    assert (shots == docs) == writes_docs()


def test_content_cannot_log_readers_out_and_an_admin_moderates_it(site: Site, open_page) -> None:
    """A registered user's post whose images point at /auth/logout logs none of its readers
    out. An admin (made with `flask make-admin`) disables its author from the page, whose
    session ends at once and whose login is refused, then removes the post."""
    mallory = Visitor(site.base)
    mallory.register_and_login("mallory", PASSWORD)
    mallory.create_post("Free prizes", "![prize](/auth/logout)\n\n<img src=/auth/logout>")
    post = mallory.post_id("Free prizes")
    grace = Visitor(site.base)
    grace.register_and_login("grace", PASSWORD)
    assert "grace is an admin." in flask(site.env, "make-admin", "grace").stdout
    key = grace.enrol_second_factor(PASSWORD)  # admins need one (FLASKR_REQUIRE_2FA_FOR_ADMINS)
    with open_page() as (page, _):
        page.goto(site.url("/auth/login"))
        page.get_by_label("Username", exact=True).fill("grace")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log In").click()
        expect(page).to_have_url(site.url("/auth/code"))
        # The next time step's code: the current one may be the one enrolling used.
        code = pyotp.TOTP(key).at(time.time() + 30)
        page.get_by_label("Code from your authenticator app").fill(code)
        page.get_by_role("button", name="Log In").click()
        expect(page).to_have_url(site.url("/"))
        with page.expect_response(site.url("/auth/logout")) as image:
            page.goto(site.url(f"/{post}"))
        assert image.value.status == 200  # the confirmation page, fetched as an image
        page.reload()
        expect(page.get_by_role("link", name="Log Out")).to_be_visible()
        expect(page.get_by_role("button", name="Remove post")).to_be_visible()

        page.get_by_role("button", name="Disable mallory").first.click()
        expect(page.get_by_role("alert")).to_have_text("mallory is disabled.")
        assert mallory.get("/create").headers["Location"] == "/auth/login"  # at once
        refused = mallory.submit("/auth/login", {"username": "mallory", "password": PASSWORD})
        assert refused.status_code == 403
        assert "This account has been disabled by an admin." in refused.text

        page.goto(site.url(f"/{post}"))
        page.get_by_role("button", name="Remove post").click()
        expect(page).to_have_url(site.url("/"))
        expect(page.get_by_role("alert")).to_have_text(f"Post {post} removed.")
    assert Visitor(site.base).get(f"/{post}").status_code == 404
