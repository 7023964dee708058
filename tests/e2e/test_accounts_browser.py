"""A person's account in Chromium, with a real SMTP server, on SQLite and on PostgreSQL: a
second factor added with a code computed from the key its page shows and asked for at the next
login, an address confirmed through the link mailed to it, and a forgotten password reset
through the next one, which leaves the second factor in place. The new pages are
photographed as they are met (docs/screenshots with FLASKR_SCREENSHOTS=1)."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Page, Playwright, expect

from toolkit.browser import ConsoleWatch, chromium
from toolkit.mailserver import Smtp, senders
from toolkit.servers import app_env, init_db, serve
from toolkit.tls import issue, make_ca

SITE = "https://blog.example.test"
ADDRESS = "erin@example.test"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    ca = make_ca(tmp_path_factory.mktemp("tls"), "accounts e2e CA")
    return ca, *issue(ca, "smtp", ["localhost"], ips=("127.0.0.1",))


def fill(page: Page, fields: dict[str, str], button: str) -> None:
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name=button).click()


def log_out(page: Page, base: str) -> None:
    page.get_by_role("link", name="Log Out").click()
    page.get_by_role("button", name="Log Out").click()
    expect(page).to_have_url(base + "/")


def next_code(totp: pyotp.TOTP, used: list[int]) -> str:
    """A code the site takes now, of a later time step than the codes ``used`` (each works
    once): this step's, then the next one's, which the site also takes (a clock a step
    ahead), so two codes need no wait for the clock."""
    now = int(time.time()) // totp.interval
    step = max([now, *(last + 1 for last in used[-1:])])
    assert step <= now + 1, "both of this window's codes were used"
    used.append(step)
    return totp.generate_otp(step)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
def test_second_factor_then_a_forgotten_password_by_mail(
    playwright: Playwright, database: dict[str, str], tls, tmp_path: Path, shots: Path
) -> None:
    smtp = Smtp(tmp_path, tls)
    env = app_env(
        tmp_path / "instance",
        keep_database_url=False,
        FLASKR_SITE_URL=SITE,
        FLASKR_MAIL_URL=f"smtp://localhost:{smtp.port}",
        FLASKR_MAIL_FROM="blog@example.test",
        FLASKR_MAIL_POLL_SECONDS="1",
        SSL_CERT_FILE=str(tls[0]),
        **database,
    )
    init_db(env)
    suffix = "-pg" if database else ""
    with (
        smtp.up(),
        senders(env, tmp_path),
        serve(env, tmp_path / "gunicorn.log", ready="/hello", timeout=90) as server,
        chromium(playwright, tmp_path / "profile") as page,
    ):
        base = server.base
        console = ConsoleWatch(page)
        page.goto(base + "/auth/register")
        fill(page, {"Username": "erin", "Password": "first password"}, "Register")
        fill(page, {"Username": "erin", "Password": "first password"}, "Log In")
        expect(page).to_have_url(base + "/")

        # The second factor: from the account's page, the key the page shows, a code of it.
        page.get_by_role("link", name="erin").click()
        page.get_by_role("link", name="Second factor (authenticator app)").click()
        page.get_by_role("link", name="Add a second factor").click()
        expect(page.locator(".qr-code svg")).to_be_visible()
        if not suffix:
            page.screenshot(path=shots / "two-factor-enrol.png", full_page=True)
        totp, used = pyotp.TOTP(page.locator("#totp-key").inner_text()), list[int]()
        console.expect_status(base + "/auth/two-factor/enrol", 400)
        fill(page, {"Code": "000000" if totp.now() != "000000" else "111111",
                    "Current password": "first password"}, "Add Second Factor")  # fmt: skip
        expect(page.locator("#code-error")).to_contain_text("That code is not right")
        fill(page, {"Code": next_code(totp, used), "Current password": "first password"},
             "Add Second Factor")  # fmt: skip
        expect(page.get_by_role("heading", name="Your Recovery Codes")).to_be_visible()
        codes = page.locator(".recovery-codes code").all_inner_texts()
        assert len(codes) == 10 and len(set(codes)) == 10
        if not suffix:
            page.screenshot(path=shots / "two-factor-recovery-codes.png", full_page=True)

        # The next login asks for a code after the password; a recovery code works once.
        page.get_by_role("link", name="Done").click()
        log_out(page, base)
        page.get_by_role("link", name="Log In").click()
        fill(page, {"Username": "erin", "Password": "first password"}, "Log In")
        expect(page).to_have_url(base + "/auth/code")
        if not suffix:
            page.screenshot(path=shots / "two-factor-code.png", full_page=True)
        fill(page, {"Code from your authenticator app": next_code(totp, used)}, "Log In")
        expect(page).to_have_url(base + "/")
        expect(page.get_by_role("link", name="erin")).to_be_visible()
        log_out(page, base)
        for status in (302, 400):
            page.goto(base + "/auth/login")
            fill(page, {"Username": "erin", "Password": "first password"}, "Log In")
            if status == 400:
                console.expect_status(base + "/auth/code", 400)
            fill(page, {"Or a recovery code": codes[0]}, "Log In")
            if status == 302:
                expect(page.get_by_role("alert")).to_contain_text("Recovery code used")
                expect(page.get_by_role("alert")).to_contain_text("9 left")
                log_out(page, base)
            else:
                expect(page.get_by_role("alert")).to_contain_text("That code is not right")

        # An address, confirmed through the link mailed to it.
        fill(page, {"Or a recovery code": codes[1]}, "Log In")
        page.goto(base + "/auth/email")
        fill(page, {"New e-mail address": ADDRESS, "Current password": "first password"}, "Save")
        expect(page.get_by_role("alert")).to_contain_text(f"A link to confirm {ADDRESS}")
        page.goto(base + smtp.link_path(SITE, ADDRESS, "Confirm your e-mail address"))
        if not suffix:
            page.screenshot(path=shots / "email-confirm.png", full_page=True)
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("alert")).to_contain_text(f"Your e-mail address is {ADDRESS} now.")
        log_out(page, base)

        # The password forgotten: the mailed link sets a new one; the second factor stays.
        page.get_by_role("link", name="Log In").click()
        page.get_by_role("link", name="Forgot your password?").click()
        if not suffix:
            page.screenshot(path=shots / "forgot-password.png", full_page=True)
        fill(page, {"Username or e-mail address": ADDRESS}, "Send the Link")
        expect(page).to_have_url(base + "/auth/login")
        page.goto(base + smtp.link_path(SITE, ADDRESS, "Set a new password"))
        if not suffix:
            page.screenshot(path=shots / "reset-password.png", full_page=True)
        fill(page, {"New password": "second password"}, "Set Password")
        expect(page).to_have_url(base + "/auth/login")
        console.expect_status(base + "/auth/login", 400)
        fill(page, {"Username": "erin", "Password": "first password"}, "Log In")
        expect(page.get_by_role("alert")).to_contain_text("Incorrect username or password.")
        fill(page, {"Username": "erin", "Password": "second password"}, "Log In")
        expect(page).to_have_url(base + "/auth/code")
        fill(page, {"Or a recovery code": codes[2]}, "Log In")
        expect(page).to_have_url(base + "/")
        expect(page.get_by_role("link", name="erin")).to_be_visible()
    assert not console.problems, "\n".join(console.problems)
