"""install-host's last check: every server name answers /healthz with 200 through nginx, as a
visitor would ask (127.0.0.1, the name as Host), within SECONDS. Run by scripts/install-host with
the host's /usr/bin/python3 (the standard library only):

    health_check.py SECONDS SCHEME CERT NAME...

SCHEME is the site's as written: "https" when it has a certificate, so http must redirect there
and the https answer counts; "http" when it has none, so http must answer (an nginx still on
the old site does not). CERT, when not "", is --tls-cert's: each name must be served that very
certificate (SNI), and it must cover the name (openssl x509 -checkhost); any other is not "done".
The certificate is not verified otherwise: the name may not resolve here yet.

It prints which names answered, then the site's address (https:// once http redirects there);
it fails with what came back for the first name that did not answer.
"""

import hashlib
import http.client
import shutil
import ssl
import subprocess
import sys
import time

from certificate import first_certificate


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def served_elsewise(sock: ssl.SSLSocket, name: str, expected: str, cert: str) -> str | None:
    """What is wrong with the certificate nginx served for name, or None: it must be the
    expected one (--tls-cert's), and cover the name (openssl x509 -checkhost)."""
    der = sock.getpeercert(binary_form=True) or b""
    got = fingerprint(der)
    if expected and got != expected:
        return (
            f"nginx serves the certificate with SHA-256 {got}, not the one in {cert} ({expected})"
        )
    if name != "localhost" and shutil.which("openssl"):
        check = ["openssl", "x509", "-inform", "DER", "-noout", "-checkhost", name]
        # No shell: the name is one argument, whatever it holds.
        out = subprocess.run(check, input=der, capture_output=True).stdout  # noqa: S603
        if b" does match " not in out:
            return f"nginx serves a certificate that does not cover {name} (browsers refuse it)"
    return None


def ask(name: str, scheme: str, expected: str, cert: str) -> tuple[int | str, str]:
    """What /healthz answers for name (its status, or what is wrong), and over which scheme."""
    c = http.client.HTTPConnection("127.0.0.1", 80, timeout=5)
    c.request("GET", "/healthz", headers={"Host": name})
    r = c.getresponse()
    redirect = r.status in (301, 302, 307, 308)
    if redirect and r.getheader("Location", "").startswith("https://") and scheme == "https":
        tls = ssl.create_default_context()
        tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", 443, timeout=5, context=tls)
        c.sock = tls.wrap_socket(c._create_connection(("127.0.0.1", 443), 5), server_hostname=name)
        wrong = served_elsewise(c.sock, name, expected, cert)
        if wrong:
            return wrong, "https"
        c.request("GET", "/healthz", headers={"Host": name})
        return c.getresponse().status, "https"
    if scheme == "https" and r.status == 200:
        return 0, "http"  # the site has a certificate, yet http answers: nginx's old site
    return r.status, "http"


def wait_for(name: str, deadline: float, scheme: str, expected: str, cert: str) -> None:
    """Ask for name until it answers 200; past deadline, fail with what came back last."""
    while True:
        try:
            status, over = ask(name, scheme, expected, cert)
            if isinstance(status, str):
                last = status
            elif status:
                last = f"HTTP {status} over {over}"
            else:
                last = "http answers, not its redirect"
            if status == 200:
                return
        except http.client.RemoteDisconnected:
            last = (
                "the connection was closed without an answer (nginx's 444: no site has this name)"
            )
        except OSError as e:
            last = str(e)
        if time.monotonic() > deadline:
            sys.exit(f"install-host: error: Host: {name} on 127.0.0.1 answers: {last}")
        time.sleep(0.2)


def main(seconds: str, scheme: str, cert: str, *names: str) -> None:
    deadline = time.monotonic() + float(seconds)
    expected = fingerprint(first_certificate(cert) or b"") if cert else ""
    asked = [n.replace("*", "x").lstrip(".") for n in names if n != "_"]
    for name in asked:
        wait_for(name, deadline, scheme, expected, cert)
    print(f"install-host: answers /healthz with 200 as: {' '.join(asked)}")
    print(f"{scheme}://{asked[0] if asked else 'localhost'}/")


if __name__ == "__main__":
    main(*sys.argv[1:])
