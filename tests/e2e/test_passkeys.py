"""Passkeys in a real browser: Debian's Chromium, driven by Playwright, with its virtual
authenticator (the DevTools protocol's WebAuthn domain) standing in for a phone or a security
key, against flaskr under gunicorn (the fixtures, shared with test_browser.py: conftest.py).
Enrol a passkey, sign in with it alone and as the second step, and have a cloned one (planted
with an old signature counter) refused. The screenshots of the passkey pages are taken here
(FLASKR_SCREENSHOTS=1, see scripts/screenshots).

WebAuthn needs a secure context and a domain for its RP ID: the pages are opened on
http://localhost, not 127.0.0.1 (an address is no RP ID)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page, expect

from toolkit.browser import Site
from toolkit.visitors import Visitor

PASSWORD = "correct horse battery"

#: The virtual authenticator of browser.md: a platform one that keeps discoverable
#: credentials and verifies its user (a fingerprint, a PIN), every time.
AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


def on_localhost(site: Site) -> str:
    return site.base.replace("://127.0.0.1:", "://localhost:")


def authenticator(page: Page) -> tuple[CDPSession, str]:
    """A virtual authenticator for ``page``'s browser: the DevTools session and its id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": AUTHENTICATOR})
    return cdp, added["authenticatorId"]


def credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})["credentials"]


def log_in_with_password(page: Page, base: str, username: str) -> None:
    page.goto(base + "/auth/login")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log In").click()


def log_out(page: Page, base: str) -> None:
    page.goto(base + "/auth/logout")
    page.get_by_role("button", name="Log Out").click()
    expect(page.get_by_role("link", name="Log In")).to_be_visible()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_enrol_a_passkey_sign_in_with_it_and_refuse_a_clone(
    site: Site, open_page, shots: Path, tmp_path: Path
) -> None:
    base = on_localhost(site)
    Visitor(site.base).register_and_login("alice", PASSWORD)
    with open_page() as (page, console):
        cdp, authenticator_id = authenticator(page)
        log_in_with_password(page, base, "alice")
        expect(page).to_have_url(base + "/")

        # Enrol: a name and the password, then the authenticator makes the key.
        page.goto(base + "/auth/password")
        page.get_by_role("link", name="Passkeys").click()
        expect(page).to_have_url(base + "/auth/passkeys")
        expect(page.get_by_text("You have no passkey yet.")).to_be_visible()
        expect(page.get_by_text("Passkeys are unavailable")).to_be_hidden()
        page.get_by_label("Name", exact=True).fill("This laptop")
        page.get_by_label("Current password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Add Passkey").click()
        expect(page.get_by_role("alert")).to_contain_text("Passkey “This laptop” added")
        row = page.locator("table.passkeys tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("This laptop")
        expect(row).to_contain_text("never")
        (made,) = credentials(cdp, authenticator_id)
        assert made["isResidentCredential"] and made["rpId"] == "localhost"
        page.screenshot(path=shots / "passkeys-desktop.png", full_page=True)

        # Sign in with it alone: no name, no password.
        log_out(page, base)
        page.goto(base + "/auth/login")
        page.screenshot(path=shots / "login-passkey-desktop.png", full_page=True)
        page.get_by_role("button", name="Sign in with a passkey").click()
        expect(page).to_have_url(base + "/")
        expect(page.locator("nav").first).to_contain_text("alice")

        # The password alone no longer logs in: the passkey is asked for after it.
        log_out(page, base)
        log_in_with_password(page, base, "alice")
        expect(page).to_have_url(base + "/auth/code")
        expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
        page.screenshot(path=shots / "code-passkey-desktop.png", full_page=True)
        page.get_by_role("button", name="Use a passkey").click()
        expect(page).to_have_url(base + "/")
        page.goto(base + "/auth/passkeys")
        expect(row).not_to_contain_text("never")  # last used: now

        # A clone: the same key planted again with the counter it had when it was made.
        (used,) = credentials(cdp, authenticator_id)
        assert used["signCount"] > made["signCount"]  # two sign-ins since
        cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator_id})
        cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator_id,
                                            "credential": made})  # fmt: skip
        log_out(page, base)
        console.expect_status(base + "/auth/passkeys/sign-in", 400)
        page.goto(base + "/auth/login")
        page.get_by_role("button", name="Sign in with a passkey").click()
        refusal = page.locator(".passkey-error")
        expect(refusal).to_contain_text("signature counter did not go up")
        expect(refusal).to_contain_text("it may be a copy")
        expect(page).to_have_url(base + "/auth/login")
        expect(page.get_by_role("link", name="Log In")).to_be_visible()  # not logged in
    assert ", a clone?" in (tmp_path / "gunicorn.log").read_text()  # logged


def test_without_webauthn_the_pages_say_passkeys_are_unavailable(site: Site, open_page) -> None:
    base = on_localhost(site)
    Visitor(site.base).register_and_login("bob", PASSWORD)
    with open_page(java_script_enabled=False) as (page, _):
        page.goto(base + "/auth/login")
        expect(page.get_by_text("Passkeys are unavailable in this browser")).to_be_visible()
        expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
        log_in_with_password(page, base, "bob")
        page.goto(base + "/auth/passkeys")
        expect(page.get_by_text("Passkeys are unavailable in this browser")).to_be_visible()
        expect(page.get_by_role("button", name="Add Passkey")).to_be_hidden()
