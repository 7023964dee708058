"""Certificates and an ACME server for the https tests of tests/e2e/host/.

A certificate authority of the suite's own (openssl on the CI host), standing in for a
company CA (``install-host --tls-cert``) and for the one that signs pebble's own https
listener; and pebble, Let's Encrypt's test ACME server (Debian's package), run inside the
machine as a transient systemd unit that stops by itself, so certbot gets real certificates
after a real http-01 validation through the machine's nginx. And testssl.sh, the scanner
outsiders judge an https site with, pointed at the machine's site.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from toolkit.machines import Machine, MachineError
from toolkit.packages import need

PEBBLE_DIR = "https://127.0.0.1:14000/dir"
PEBBLE_ROOTS = "https://127.0.0.1:15000/roots/0"


def openssl(*args: str) -> None:
    need("openssl")
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed CA valid for two days; its key sits beside it.

    With the key usages RFC 5280 asks of a CA: Python 3.13's default verification
    (VERIFY_X509_STRICT) refuses a CA without them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca = folder / "ca.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", f"/CN={name}", "-keyout", str(folder / "ca.key"),
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", str(ca))  # fmt: skip
    return ca


def issue(
    ca: Path, stem: str, names: list[str], ips: tuple[str, ...] = (), ocsp: str = ""
) -> tuple[Path, Path]:
    """A server certificate for ``names`` signed by ``ca`` (naming ``ocsp`` as its OCSP
    responder, if given): (certificate, key)."""
    folder = ca.parent
    cert, key, csr = (folder / f"{stem}.{ext}" for ext in ("crt", "key", "csr"))
    san = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{ip}" for ip in ips)])
    ext = (
        f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
    )
    if ocsp:
        ext += f"authorityInfoAccess=OCSP;URI:{ocsp}\n"
    (folder / f"{stem}.ext").write_text(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", f"/CN={names[0]}", "-keyout", str(key), "-out", str(csr))  # fmt: skip
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(folder / "ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", str(folder / f"{stem}.ext"),
            "-out", str(cert))  # fmt: skip
    return cert, key


def start_pebble(machine: Machine, certs: str, out: str) -> None:
    """pebble on the machine's 127.0.0.1:14000 (ACME) and :15000 (its roots), validating
    http-01 on port 80 (nginx), with ``certs``/pebble.{crt,key} as its own https certificate.
    Its issuing root, made afresh at each start, is written to ``out`` in the machine."""
    config = {
        "pebble": {
            "listenAddress": "127.0.0.1:14000",
            "managementListenAddress": "127.0.0.1:15000",
            "certificate": f"{certs}/pebble.crt",
            "privateKey": f"{certs}/pebble.key",
            "httpPort": 80,
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    # NOSLEEP: no random pause before validating; NONCEREJECT=0: no deliberately bad nonces.
    machine.sh(
        f"mkdir -p /etc/pebble && echo {shlex.quote(json.dumps(config))} > /etc/pebble/config.json"
        " && systemd-run --quiet --unit=pebble --property=RuntimeMaxSec=900"
        " --setenv=PEBBLE_VA_NOSLEEP=1 --setenv=PEBBLE_WFE_NONCEREJECT=0"
        " /usr/bin/pebble -config /etc/pebble/config.json"
    )
    fetch = f"curl -sSf --cacert {certs}/ca.pem -o {out} {PEBBLE_ROOTS}"
    done = machine.run(
        ["sh", "-c", f"for i in $(seq 100); do {fetch} 2>/dev/null && exit 0; sleep 0.1; done;"
         f" {fetch}"],
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise MachineError(f"pebble did not come up: {done.stderr}\n" + machine.sh(
            "journalctl -u pebble -n 20 --no-pager", check=False))  # fmt: skip


def start_ocsp_responder(machine: Machine, cert: Path, folder: str, port: int) -> None:
    """openssl's OCSP responder in the machine on ``port``, answering "good" for ``cert``,
    signed by its CA (ca.pem, ca.key in ``folder``, the machine's view of cert's folder)."""
    found = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-noout", "-serial", "-enddate", "-dateopt", "iso_8601"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    serial = found.split("serial=")[1].split()[0]
    end = found.split("notAfter=")[1].strip()  # 2026-12-02 14:40:01Z
    expiry = end[2:4] + end[5:7] + end[8:10] + end[11:13] + end[14:16] + end[17:19] + "Z"
    (cert.parent / "index.txt").write_text(f"V\t{expiry}\t\t{serial}\tunknown\t/CN=site\n")
    machine.run(
        ["systemd-run", "--quiet", "--unit=ocsp", "--property=RuntimeMaxSec=900", "openssl",
         "ocsp", "-index", f"{folder}/index.txt", "-port", str(port), "-CA", f"{folder}/ca.pem",
         "-rsigner", f"{folder}/ca.pem", "-rkey", f"{folder}/ca.key", "-nmin", "5"]
    )  # fmt: skip


def run_testssl(
    machine: Machine, name: str, cafile: Path, out: Path, checks: tuple[str, ...]
) -> tuple[list[dict[str, str]], float]:
    """testssl.sh (Debian's package, on the CI host, with the host's OpenSSL) against
    https://NAME/ on the machine's 127.0.0.1:443, from the machine's network namespace (as
    machine_client's requests go), trusting ``cafile`` besides its own stores. ``checks``:
    testssl's options for what to run. Returns its findings (the objects of its flat JSON file,
    written to ``out``) and the seconds it took."""
    need("testssl")
    if not machine.init_pid:
        raise MachineError("the machine is not running")
    command = [
        "nsenter", "-t", str(machine.init_pid), "-n",
        "testssl", "--quiet", "--warnings", "batch", "--color", "0",
        # The machine has no DNS: the name's address is given, and nothing is looked up (no
        # reverse lookup, no CAA record).
        "--ip", "127.0.0.1", "--nodns", "none",
        "--add-ca", str(cafile), "--jsonfile", str(out), *checks, f"https://{name}/",
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TERM": "dumb"}
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL
    )
    took = time.monotonic() - started
    findings = json.loads(out.read_text()) if out.exists() else []
    # Its exit status counts checks that had trouble; a scan that ran to its end says how long.
    if not any(f["id"] == "scanTime" for f in findings):
        raise MachineError(
            f"testssl exited {done.returncode} without finishing:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-3000:]}"
        )
    return findings, took
