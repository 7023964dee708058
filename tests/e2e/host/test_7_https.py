"""Stage 7 of the host suite, the last (see __init__.py): https as users get it, certbot
against a real ACME server, then a certificate of one's own. From its first test on, the
site answers to NAME only, and over https until the last test's --no-tls."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.e2e.host.helpers import NAME, SITE, SRC, Host, snapshot
from toolkit.machines import Machine
from toolkit.recipes import recipe
from toolkit.tls import PEBBLE_DIR, issue, make_ca, run_testssl, start_ocsp_responder, start_pebble
from toolkit.wait import until

#: docs/deploy-host.md's `certbot --nginx -d NAME`, with what its prompts would ask (e-mail,
#: terms) on the command line, and pebble as the ACME server instead of Let's Encrypt's.
CERTBOT = ["certbot", "--nginx", "-d", NAME, "--non-interactive", "--agree-tos",
           "--email", "admin@flaskr.test", "--server", PEBBLE_DIR]  # fmt: skip
#: pebble's own https listener is signed by the suite's CA: certbot (a client) trusts it this
#: way, for its own requests only. Nothing is added to the machine's trust store.
PEBBLE_TRUST = f"REQUESTS_CA_BUNDLE={SRC}/tls/ca.pem"
#: pebble's issuing root, inside the machine: what the test's clients (curl, openssl, the
#: Python client) trust, passed to each of them, and nothing else does.
PEBBLE_ROOT = "/root/pebble-root.pem"


@dataclass
class Https:
    certbot: subprocess.CompletedProcess[str]
    cafile: str  # the site's CA, inside the machine
    client: tuple[str, ...]  # machine_client's options for https to NAME, trusting that CA only


def install_as(name: str, *args: str, src: str = f"{SRC}/flaskr") -> list[str]:
    """install-host as the docs run it: `sudo FLASKR_SERVER_NAME=NAME ./scripts/install-host`."""
    return ["env", f"FLASKR_SERVER_NAME={name}", f"{src}/scripts/install-host", "--wheels",
            "/srv/wheels", *args]  # fmt: skip


HTTPS: list[Https] = []  # set once by the test below


def test_deploy_host_https_as_the_suite_runs_it(host: Host) -> None:
    """docs/deploy-host.md's steps as the guide shows the suite running them: install-host
    with the site's name, then certbot --nginx against pebble."""
    m = host.machine
    issue(make_ca(host.src / "tls", "flaskr suite CA"), "pebble", ["localhost"], ("127.0.0.1",))
    start_pebble(m, f"{SRC}/tls", PEBBLE_ROOT)
    lines = recipe(
        "docs/deploy-host.md",
        "https, as the suite runs it",
        replace={"suite-ca.pem": f"{SRC}/tls/ca.pem"},
    )
    assert lines[-1].split()[1:] == CERTBOT, lines  # the suite's certbot is the guide's
    named = m.recipe(lines[:-1], f"{SRC}/flaskr")  # /etc/hosts, then install-host
    assert f"runs at http://{NAME}/" in named.stdout, named.stdout
    started = time.monotonic()
    done = m.recipe(lines[-1:], f"{SRC}/flaskr")
    print(f"\n$ {lines[-1]}   ({time.monotonic() - started:.1f}s)\n{done.stdout}")
    assert "Successfully received certificate." in done.stdout, done.stdout
    assert f"Congratulations! You have successfully enabled HTTPS on https://{NAME}" in done.stdout
    root = m.rootfs / PEBBLE_ROOT.lstrip("/")
    HTTPS.append(Https(done, PEBBLE_ROOT, ("--host", NAME, "--cafile", str(root))))


@pytest.fixture(scope="module")
def https(host: Host) -> Https:
    """The site with certbot's https (the test above, which the stated order runs first)."""
    if not HTTPS:
        pytest.fail("test_deploy_host_https_as_the_suite_runs_it did not succeed")
    return HTTPS[0]


def curl(m: Machine, cafile: str, *args: str) -> subprocess.CompletedProcess[str]:
    return m.run(["curl", "-sS", "--max-time", "20", "--cacert", cafile, *args], check=False)


def s_client(m: Machine, *args: str) -> str:
    """openssl s_client's whole output (it exits 1 when the handshake fails)."""
    return m.sh(f"echo | openssl s_client -connect 127.0.0.1:443 {shlex.join(args)} 2>&1",
                check=False)  # fmt: skip


def assert_https_site(m: Machine, cafile: str, issuer: str) -> str:
    """What every https setup of the site must show; returns `curl -sSI` of the login page."""
    # The certificate is the expected CA's, and verifies against it (curl checks the name).
    served = m.sh(
        f"echo | openssl s_client -connect 127.0.0.1:443 -servername {NAME} 2>/dev/null"
        " | openssl x509 -noout -issuer -subject -ext subjectAltName"
    )
    assert issuer in served and f"DNS:{NAME}" in served, served
    head = curl(m, cafile, "-I", f"https://{NAME}/auth/login")
    assert head.returncode == 0, head.stderr
    lines = head.stdout.lower().splitlines()
    assert lines[0].strip() == "http/2 200", head.stdout  # HTTP/2 negotiated (ALPN)
    assert "server: nginx" in [line.strip() for line in lines], head.stdout  # no version
    cookie = next(line for line in lines if line.startswith("set-cookie: session="))
    assert "; secure" in cookie and "; httponly" in cookie, cookie
    assert lines.count("strict-transport-security: max-age=63072000") == 1, head.stdout
    # Static files come from nginx: HSTS there too, once.
    css = curl(m, cafile, "-I", f"https://{NAME}/static/style.css").stdout.lower()
    assert css.count("strict-transport-security: max-age=63072000") == 1, css
    # http redirects to the same URL over https.
    plain = m.run(["curl", "-sSI", f"http://{NAME}/2?page=1"]).stdout
    assert plain.splitlines()[0].strip() == "HTTP/1.1 301 Moved Permanently", plain
    assert f"Location: https://{NAME}/2?page=1" in plain, plain
    # Without the CA given to it, a client of the machine does not trust the site: the test CA
    # is trusted by the test's clients only.
    assert curl(m, "/etc/ssl/certs/ca-certificates.crt", f"https://{NAME}/").returncode == 60
    # Modern TLS (Mozilla's "intermediate"): TLS 1.1 is refused by the server (the client
    # offers it at OpenSSL's lowest security level, so the refusal is nginx's), 1.2 and 1.3
    # are spoken, and no session ticket is handed out.
    old = curl(m, cafile, "--tlsv1.1", "--tls-max", "1.1", f"https://{NAME}/healthz")
    assert old.returncode == 35 and "alert protocol version" in old.stderr, old.stderr
    old = s_client(m, "-servername", NAME, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert "alert protocol version" in old, old
    for version in ("1_2", "1_3"):
        out = s_client(m, "-servername", NAME, f"-tls{version}", "-CAfile", cafile)
        assert f"New, TLSv{version.replace('_', '.')}, Cipher is" in out, out
        assert "Verify return code: 0 (ok)" in out, out
    assert "TLS session ticket" not in s_client(m, "-servername", NAME, "-tls1_2")
    # The default server on 443: no handshake for an unknown name or none (the bare address),
    # and a known name with a forged Host never reaches the app (444: closed, no answer).
    assert "unrecognized name" in s_client(m, "-servername", "evil.example")
    assert "unrecognized name" in s_client(m, "-noservername")
    forged = curl(m, cafile, "--http1.1", "-H", "Host: evil.example", f"https://{NAME}/healthz")
    assert forged.returncode == 52, forged  # "Empty reply from server"
    assert_no_nginx_version(m, cafile)
    return head.stdout


def assert_no_nginx_version(m: Machine, cafile: str) -> None:
    """No answer of this nginx names its version, in a header or on a page: not the default
    server's to plain http sent to port 443 (with the site's name, another or none), not the
    port-80 server that redirects to https, not nginx's own 404 over https; port 80 answers
    other names nothing at all."""
    answers = {
        "plain http to 443": m.run(["curl", "-sSi", "http://127.0.0.1:443/"], check=False),
        "plain http to 443, the site's name": m.run(
            ["curl", "-sSi", f"http://{NAME}:443/"], check=False
        ),
        "plain http to 443, another name": m.run(
            ["curl", "-sSi", "-H", "Host: evil.example", "http://127.0.0.1:443/"], check=False
        ),
        "the redirect to https": m.run(["curl", "-sSi", f"http://{NAME}/x"], check=False),
        "nginx's 404 over https": curl(m, cafile, "-i", f"https://{NAME}/static/no-such.css"),
    }
    for what, answer in answers.items():
        status, *headers = answer.stdout.split("\r\n\r\n", 1)[0].splitlines()
        assert status.split()[1] in ("400", "301", "404"), (what, answer)
        assert "server: nginx" in [h.strip().lower() for h in headers], (what, answer.stdout)
        assert "nginx/" not in answer.stdout, (what, answer.stdout)  # header or page
    unknown = m.run(["curl", "-sSi", "-H", "Host: evil.example", "http://127.0.0.1/"], check=False)
    assert unknown.returncode == 52 and unknown.stdout == "", unknown  # 444: closed, no answer


def test_deploy_host_from_a_fresh_server_to_https_certbot(host: Host, https: Https) -> None:
    """The guide's certbot step as a reader types it (pebble for Let's Encrypt, and what its
    prompts ask on the command line), on the site certbot has just set up: the packages are
    there (apt installs nothing; the machine has no network), and certbot keeps the
    certificate it has and deploys it again."""
    m = host.machine
    lines = recipe(
        "docs/deploy-host.md",
        "From a fresh server to https",
        1,
        replace={
            "sudo certbot": f"{PEBBLE_TRUST} certbot",
            "-d blog.example.org": f"-d {NAME} " + shlex.join(CERTBOT[4:]),
            "sudo ": "",
        },
    )
    again = m.recipe(lines, "/root")
    print(f"\n$ {lines[-1]}\n{again.stdout}")
    assert "already the newest version" in again.stdout, again.stdout
    # No stapling for a certificate that names no OCSP responder (pebble's, Let's Encrypt's):
    # nginx warned about it on every check and reload.
    checked = m.run(["nginx", "-t"])
    assert "ssl_stapling" not in checked.stderr, checked.stderr
    site = m.sh("cat /etc/nginx/sites-available/flaskr")
    assert "listen 443 ssl; # managed by Certbot" in site and "return 301 https://" in site
    head = assert_https_site(m, https.cafile, "Pebble Intermediate CA")
    print(f"\n$ curl -sSI https://{NAME}/auth/login\n{head}")
    served = s_client(m, "-servername", NAME, "-status", "-CAfile", https.cafile)
    print(
        "\n".join(
            re.findall(
                r"^(?:subject|issuer|OCSP response|Verify return code).*$|^New, .*$", served, re.M
            )
        )
    )


def test_a_persons_flow_over_https(host: Host, https: Https) -> None:
    m = host.machine
    done = m.client(*https.client, "flow", f"Hello-over-https-{uuid.uuid4().hex[:6]}")
    attributes = [a.strip() for a in str(done["session_cookie"]).split(";")]
    assert "Secure" in attributes and "HttpOnly" in attributes, done
    # Redirects (register, log in, post) lead to https pages of the site.
    locations = done["locations"]
    assert isinstance(locations, list) and len(locations) >= 3, done
    for location in locations:
        assert urljoin(f"https://{NAME}/auth/register", location).startswith(f"https://{NAME}/")
    # The feed's absolute links are https ones, the new post's among them.
    urls = m.client(*https.client, "feed")["urls"]
    assert isinstance(urls, list) and f"https://{NAME}/{done['post_id']}" in urls, urls
    assert all(url.startswith(f"https://{NAME}/") for url in urls), urls


def test_upgrade_keeps_certbots_https(host: Host, https: Https) -> None:
    """docs/deploy-host.md's upgrade (install-host from a newer checkout) after certbot."""
    m = host.machine
    newer = host.src / "flaskr-tls-upgrade"
    shutil.copytree(host.src / "flaskr", newer)
    marker = f"upgrade-{uuid.uuid4().hex[:8]}.txt"
    (newer / "flaskr/static" / marker).write_text("newer, over https\n")
    site = m.sh("cat /etc/nginx/sites-available/flaskr")
    with m.load(options=https.client) as load:
        load.wait_ok(50)
        done = m.run(install_as(NAME, src=f"{SRC}/flaskr-tls-upgrade"), timeout=300)
        load.more(100)
        result = load.stop()
    print(f"\nupgrade after certbot, https load: sent {result['sent']}, failed {result['failed']}")
    print("\n".join(done.stdout.splitlines()[-3:]))
    assert "reloading flaskr" in done.stdout and "sites-available" not in done.stdout, done.stdout
    assert f"flaskr runs at https://{NAME}/" in done.stdout, done.stdout
    assert m.sh("cat /etc/nginx/sites-available/flaskr") == site  # certbot's edits, untouched
    assert m.client(*https.client, "get", f"/static/{marker}")["body"] == "newer, over https\n"
    assert result["failed"] == 0, result["errors"]


#: The certificate nginx serves for NAME, as PEM.
SERVED = f"echo | openssl s_client -connect 127.0.0.1:443 -servername {NAME} 2>/dev/null"


def test_certbot_renewal_reloads_nginx_without_a_failed_request(host: Host, https: Https) -> None:
    m = host.machine
    serial = f"{SERVED} | openssl x509 -noout -serial"
    before = m.sh(serial)
    # As certbot.timer runs it (a forced renewal: a real one, deployed, is more than the
    # --dry-run the docs suggest), without its random pause of up to 8 minutes.
    renew = ["env", PEBBLE_TRUST, "certbot", "renew", "--no-random-sleep-on-renew"]
    with m.load(options=https.client) as load:
        load.wait_ok(50)
        started = time.monotonic()
        forced = m.run([*renew, "--force-renewal"], timeout=300)
        elapsed = time.monotonic() - started
        load.more(100)
        result = load.stop()
    print(f"\ncertbot renew --force-renewal ({elapsed:.1f}s) under https load:"
          f" sent {result['sent']}, failed {result['failed']}\n{forced.stdout}")  # fmt: skip
    assert "Reloading nginx server after certificate renewal" in forced.stdout, forced.stdout
    assert "all renewals succeeded" in forced.stdout, forced.stdout
    after = m.sh(serial)
    assert after != before, after  # the renewed certificate is the one served
    assert result["failed"] == 0, result["errors"]


#: testssl.sh's checks (docs/security.md, "Checked in CI: testssl.sh"): the protocols (-p); every
#: cipher suite it knows (370, by its own sockets, not only those the local OpenSSL has), each
#: tried alone (-e); the certificate and the server's defaults (-S); the HTTP headers (-h); all
#: its vulnerability checks (-U). Left out, for time: the client simulations (-c), the server's
#: cipher order (-P: Mozilla's "intermediate" leaves the choice to the client, whose every
#: choice is one of the suites -e lists), the FS section's curve and group list (-f).
TESTSSL_CHECKS = ("-p", "-e", "-S", "-h", "-U")
#: The suites allowed: forward-secret (ECDHE; TLS 1.3's always are) and AEAD (GCM, ChaCha20).
FS_AEAD = re.compile(
    r"TLS_(ECDHE_(ECDSA|RSA)_WITH_)?(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)"
)
#: What testssl 3.0.8 rates worse than OK or INFO on this site, one by one: each with the
#: severities it may have and why it is no fault of the site. Anything else it flags fails.
TESTSSL_FLAGS: dict[str, tuple[set[str], str]] = {
    # About testssl's own client: Debian's OpenSSL has no GOST engine (Russian suites; the
    # site offers none, as -e shows: its sockets try GOST suites too).
    "engine_problem": ({"WARN"}, "No engine or GOST support"),
    # The test CA: pebble issues certificates valid for five years; Let's Encrypt's last 90
    # days, renewed by certbot (test_certbot_renewal_reloads_nginx_without_a_failed_request).
    "cert_validityPeriod": ({"MEDIUM"}, ""),
    # The test CA: pebble runs here without an OCSP responder (toolkit/tls.py) and publishes
    # no CRL, so its certificates name neither; a public CA's name at least one.
    "cert_revocation": ({"HIGH"}, "Neither CRL nor OCSP URI provided"),
    # testssl 3.0.8 asks this without SNI (its comment: "No SNI needed here"), and the default
    # server refuses any handshake without a known name (ssl_reject_handshake): checked with
    # SNI below. (Its client-initiated renegotiation and ticketbleed checks go without SNI too
    # and come out OK for that reason; the first is checked below, and the site hands out no
    # TLS 1.2 session ticket to bleed: assert_https_site.)
    "secure_renego": ({"WARN"}, "OpenSSL handshake didn't succeed"),
    # TLS 1.3 resumption: with tickets off, OpenSSL's TLS 1.3 "tickets" are 32-byte ids of the
    # server's session cache (checked below), and testssl 3.0.8's resumption check, which reads
    # them without waiting for them, sometimes fails to connect (WARN) and sometimes not (INFO).
    "sessionresumption_ticket": ({"INFO", "WARN"}, ""),
    # BREACH: testssl sees gzip on "/" and flags every site that compresses its HTML. The
    # attack reads a secret that a page repeats unchanged, answer after answer, next to text
    # the attacker chooses, one character per round of requests. A form's CSRF token is
    # Flask-WTF's: not masked per answer (the raw token inside stays the same for a session),
    # but signed with the time in seconds (itsdangerous), so the signature a forged POST needs
    # changes every second, and the raw token alone passes no check without the app's key. The
    # session cookie travels in a header, which gzip leaves alone. The search page (/?q=, text
    # the visitor chooses) holds no token; the key of a second factor being enrolled is shown
    # on a page with no text of anyone else's. Compression stays: the feed and the style
    # sheet shrink to a third (tests/e2e/test_micro_cache.py).
    "BREACH": ({"MEDIUM"}, "potentially VULNERABLE, gzip HTTP compression detected"),
}
#: Each vulnerability check, "not vulnerable" (OK) in testssl's words.
TESTSSL_VULNERABILITIES = (
    "heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_client_renego", "CRIME_TLS",
    "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM",
    "LOGJAM-common_primes", "BEAST", "LUCKY13", "RC4",
)  # fmt: skip


def test_testssl_finds_nothing_to_flag(host: Host, https: Https, tmp_path: Path) -> None:
    """testssl.sh, the tool outsiders judge an https site with, against the site with certbot's
    certificate from pebble (its chain checked against pebble's root, which testssl is given):
    TLS 1.2 and 1.3 only, forward-secret AEAD suites only, HSTS, no vulnerability, and no
    version in any Server header (assert_https_site asks the other servers)."""
    m = host.machine
    root = m.rootfs / https.cafile.lstrip("/")
    findings, took = run_testssl(m, NAME, root, tmp_path / "testssl.json", TESTSSL_CHECKS)
    found: dict[str, list[dict[str, str]]] = {}
    for finding in findings:
        found.setdefault(finding["id"], []).append(finding)

    def one(id: str) -> dict[str, str]:
        assert len(found.get(id, [])) == 1, (id, found.get(id))
        return found[id][0]

    suites = [f["finding"].split()[-1] for f in findings if f["id"].startswith("cipher_x")]
    flagged = [f for f in findings if f["severity"] not in ("OK", "INFO", "DEBUG")]
    print(f"\ntestssl {' '.join(TESTSSL_CHECKS)}: {took:.1f}s; suites: {' '.join(suites)}")
    print("\n".join(f"  {f['id']} {f['severity']}: {f['finding']}" for f in flagged))
    # Protocols: TLS 1.2 and 1.3, nothing older.
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert one(old)["finding"] == "not offered", one(old)
    assert one("TLS1_2")["finding"] == "offered" and one("TLS1_3")["finding"].startswith("offered")
    # Suites: every one the server accepts is forward-secret AEAD; both versions have some.
    assert suites and all(FS_AEAD.fullmatch(suite) for suite in suites), suites
    assert {s.startswith("TLS_ECDHE_") for s in suites} == {True, False}, suites
    # The certificate: the name, the chain up to pebble's root, and what a test CA lacks.
    assert one("cert_trust")["severity"] == "OK", one("cert_trust")
    assert one("cert_chain_of_trust")["finding"] == "passed.", one("cert_chain_of_trust")
    assert "Pebble Intermediate CA" in one("cert_caIssuers")["finding"]
    # No OCSP responder named (pebble's, as Let's Encrypt's since 2025): nothing to staple or
    # to require stapling of (stapling with a responder: the next test's own certificate).
    assert one("OCSP_stapling")["finding"] == "not offered"
    assert one("cert_mustStapleExtension")["finding"] == "--"
    # pebble embeds no Certificate Transparency timestamps (a public CA does); no DNS here, so
    # no CAA record either (--nodns none).
    assert one("certificate_transparency")["finding"] == "--"
    assert one("DNS_CAArecord")["finding"] == "check skipped as instructed"
    # HSTS for two years; nginx says its name and nothing more; the app names itself nowhere.
    hsts = one("HSTS_time")
    assert hsts["severity"] == "OK" and "=63072000 seconds" in hsts["finding"], hsts
    assert one("banner_server")["finding"] == "nginx"
    assert one("banner_application")["finding"] == "No application banner found"
    # No vulnerability found; each check ran.
    for id in TESTSSL_VULNERABILITIES:
        assert one(id)["severity"] == "OK", one(id)
    # Nothing else flagged; each flag named above comes as described.
    for finding in flagged:
        severities, start = TESTSSL_FLAGS.get(finding["id"], (set(), ""))
        assert finding["severity"] in severities, finding
        assert finding["finding"].startswith(start), finding
    for id, (severities, _) in TESTSSL_FLAGS.items():
        if "INFO" not in severities:  # a flag that went away: take it out of the list
            assert one(id)["severity"] in severities, one(id)
    # What testssl 3.0.8 cannot ask without SNI: the server supports secure renegotiation
    # (RFC 5746) and refuses a client's renegotiation.
    assert "Secure Renegotiation IS supported" in s_client(m, "-servername", NAME, "-no_tls1_3")
    again = m.sh(f"echo R | openssl s_client -connect 127.0.0.1:443 -servername {NAME}"
                 " -no_tls1_3 2>&1", check=False)  # fmt: skip
    assert "RENEGOTIATING" in again and ":no renegotiation:" in again, again
    # TLS 1.3's tickets are ids of the server's cache (32 bytes), not sessions sealed with a
    # ticket key that nginx never rotates.
    # (s_client's input stays open a second: the tickets come after the handshake.)
    tickets = m.sh(f"sleep 1 | openssl s_client -connect 127.0.0.1:443 -servername {NAME}"
                   " -tls1_3 2>&1", check=False)  # fmt: skip
    dumps = re.findall(r"TLS session ticket:\n((?:\s+[0-9a-f]{4} - .*\n)+)", tickets)
    assert dumps and all(len(d.strip().splitlines()) == 2 for d in dumps), tickets


def test_deploy_host_https_with_a_certificate_you_already_have(host: Host, https: Https) -> None:
    """--tls-cert/--tls-key, for who cannot use ACME: the same https site, with a certificate
    from a CA the suite makes (a company CA, say); kept by later runs until --no-tls. On the
    site certbot edited, the guide's line refuses (the certificate would not be served) and
    says to add --replace-site; with it, the certificate is served."""
    m = host.machine
    ca = make_ca(host.src / "company", "Example Corp Issuing CA")
    cert, key = issue(ca, "blog", [NAME], ocsp="http://127.0.0.1:8888")
    # The file a company CA hands out: the certificate, then its chain.
    chain = cert.with_name("blog-chain.crt")
    chain.write_text(cert.read_text() + ca.read_text())
    start_ocsp_responder(m, cert, f"{SRC}/company", 8888)
    own = ["--tls-cert", f"{SRC}/company/{chain.name}", "--tls-key", f"{SRC}/company/{key.name}"]
    mismatched = m.run(
        install_as(NAME, "--replace-site", *own[:3], f"{SRC}/tls/pebble.key"), check=False
    )
    assert mismatched.returncode != 0 and "not a usable pair: the key is not the certificate's" in mismatched.stderr, mismatched  # fmt: skip
    # Refused before anything is written (the code, the migration), in one clear line.
    assert "syncing the code" not in mismatched.stdout and "wrote" not in mismatched.stdout
    assert "KEY_VALUES_MISMATCH" not in mismatched.stderr, mismatched.stderr
    paths = {"/path/to/blog.crt": own[1], "/path/to/blog.key": own[3]}
    guide = {"blog.example.org": NAME, "sudo ": "", **paths}
    site, installed = m.sh(f"cat {SITE}"), snapshot(m)
    # A certificate that does not cover the site's name: refused, nothing changed.
    wrong, wrong_key = issue(ca, "wrong", ["wrong.example.test"])
    for_wrong = ["--tls-cert", f"{SRC}/company/{wrong.name}", "--tls-key", f"{SRC}/company/{wrong_key.name}"]  # fmt: skip
    uncovered = m.run(install_as(NAME, "--replace-site", *for_wrong), check=False)
    assert uncovered.returncode == 1 and f"does not cover the server name(s) {NAME}" in uncovered.stderr, uncovered  # fmt: skip
    # On certbot's site, an option that changes the site would not take effect: refused.
    cached = m.run(install_as(NAME, "--micro-cache"), check=False)
    assert cached.returncode == 1 and "--micro-cache/--no-micro-cache would not take effect" in cached.stderr, cached  # fmt: skip
    assert f"--replace-site --wheels /srv/wheels --micro-cache): install-host then writes its own site, with it; then run `certbot --nginx -d {NAME}` again" in cached.stderr, cached.stderr  # fmt: skip
    assert snapshot(m) == installed
    # certbot edited the site: the guide's line says what to do, and changes nothing.
    lines = recipe("docs/deploy-host.md", "https with a certificate you already have", 0, guide)
    refused = m.recipe(lines, f"{SRC}/flaskr", check=False)
    assert refused.returncode != 0 and "done" not in refused.stdout, refused
    assert "run again with --replace-site and the same options" in refused.stderr, refused
    assert "--tls-cert would not take effect" in refused.stderr, refused.stderr
    assert m.sh(f"cat {SITE}") == site and m.sh("test -e /etc/flaskr/tls || echo none") == "none"
    assert "Pebble Intermediate CA" in m.sh(f"{SERVED} | openssl x509 -noout -issuer")
    # As it says: --replace-site takes install-host's own site again, with the certificate.
    lines = recipe(
        "docs/deploy-host.md",
        "https with a certificate you already have",
        0,
        {**guide, "./scripts/install-host": "./scripts/install-host --replace-site"},
    )
    done = m.recipe(lines, f"{SRC}/flaskr")
    assert f"flaskr runs at https://{NAME}/" in done.stdout, done.stdout
    assert m.sh("stat -c '%a %U' /etc/flaskr/tls/flaskr.key") == "600 root"
    # Another name, which this certificate does not cover: refused, the site as it was.
    installed = snapshot(m)
    other_name = m.run(install_as(NAME, "--server-name", "other.example.test"), check=False)
    assert other_name.returncode == 1 and "does not cover the server name(s) other.example.test" in other_name.stderr, other_name  # fmt: skip
    assert snapshot(m) == installed
    assert_https_site(m, f"{SRC}/company/ca.pem", "Example Corp Issuing CA")
    # install-host's last check compares the certificate nginx serves with the one it
    # installed: here the file holds another one of the company's (the site stays the same,
    # so nginx is not reloaded) while nginx still serves the first.
    other, other_key = issue(ca, "other", [NAME], ocsp="http://127.0.0.1:8888")
    tls = "/etc/flaskr/tls/flaskr"
    m.sh(f"cp -p {tls}.crt /root/own.crt && cp -p {tls}.key /root/own.key && "
         f"cp {SRC}/company/{other.name} {tls}.crt && cp {SRC}/company/{other_key.name} {tls}.key")  # fmt: skip
    try:
        stale = m.run(["env", "FLASKR_HEALTH_SECONDS=2", *install_as(NAME)], check=False)
    finally:
        m.sh(f"cp -p /root/own.crt {tls}.crt && cp -p /root/own.key {tls}.key")
    assert stale.returncode != 0 and "done" not in stale.stdout, stale
    assert "nginx serves the certificate with SHA-256" in stale.stderr, stale.stderr
    # The last check also wants each name covered: a site edited here to serve another name's
    # certificate (kept, as local edits are) fails it.
    edit = (
        f"sed -i -e 's|ssl_certificate {tls}.crt;|ssl_certificate {SRC}/company/{wrong.name};|'"
        f" -e 's|ssl_certificate_key {tls}.key;|ssl_certificate_key {SRC}/company/{wrong_key.name};|'"
    )
    m.sh(f"cp -p {SITE} /root/site && {edit} {SITE} && systemctl reload nginx")
    try:
        uncovered = m.run(["env", "FLASKR_HEALTH_SECONDS=2", *install_as(NAME)], check=False)
    finally:
        m.sh(f"cp -p /root/site {SITE} && systemctl reload nginx")
    assert uncovered.returncode != 0 and "done" not in uncovered.stdout, uncovered
    assert f"nginx serves a certificate that does not cover {NAME}" in uncovered.stderr, uncovered
    # This certificate names an OCSP responder: nginx fetches its answer (after the first
    # handshake asks for it) and staples it, verified, to later handshakes.
    answers = [""]

    def stapled_answer() -> str | None:
        answers[0] = s_client(m, "-servername", NAME, "-status", "-CAfile", f"{SRC}/company/ca.pem")
        return answers[0] if "OCSP Response Status: successful" in answers[0] else None

    stapled = until(stapled_answer, 30, lambda: f"an OCSP answer stapled: {answers[0]}", step=0.5)
    assert "Cert Status: good" in stapled, stapled
    # A later run without the options keeps https: the copy in /etc/flaskr/tls is the choice.
    again = m.run(install_as(NAME), timeout=300)
    assert "nothing changed" in again.stdout and f"runs at https://{NAME}/" in again.stdout
    # --no-tls: http again.
    off = m.run(install_as(NAME, "--no-tls"), timeout=300)
    assert f"runs at http://{NAME}/" in off.stdout, off.stdout
    assert "warning: https is off" in off.stdout and "HSTS header" in off.stdout, off.stdout
    assert m.sh("test -e /etc/flaskr/tls || echo gone") == "gone"
