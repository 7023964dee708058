"""What an attacker can read from the login and registration answers, measured in-process.

    .venv/bin/python -m bench.login_answers [--rounds 15]

Builds the app on a scratch SQLite database with an account whose hash is the current
default (scrypt) and one with the tutorial's pbkdf2 hash, then times, in turn so machine
load hits all alike: a wrong password for each account against an unknown name (login),
and a taken name against a free one (registration). Prints the median CPU and wall time
of each and the status and words each answer carries: equal words and near medians mean
neither tells which names exist. The figures are the ones docs/security.md quotes.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from werkzeug.security import generate_password_hash

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import User

FLASH = re.compile(r'<div class="flash[^"]*" role="alert">([^<]*)</div>')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "bench-secret-key-not-for-production",
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.sqlite'}",
                "WTF_CSRF_ENABLED": False,
                # Measure the answers, not the throttle: no limit is reached here.
                **{
                    f"LOGIN_FAILURES_{k}": 10**6
                    for k in ("PER_ACCOUNT_ADDRESS", "PER_ADDRESS", "PER_USER", "GLOBAL")
                },
                "REGISTRATIONS_PER_ADDRESS": 10**6,
                "REGISTRATIONS_GLOBAL": 10**6,
            }
        )
        with app.app_context():
            upgrade_schema()
            # An account from the tutorial's days, its hash not yet upgraded at a login.
            legacy = generate_password_hash("tutorial", method="pbkdf2:sha256:50000")
            db.session.add(User(username="legacy", password=legacy))
            db.session.commit()
        client = app.test_client()
        client.post("/auth/register", data={"username": "alice", "password": "alice's password"})
        cases = {
            "login, existing name, wrong password": ("/auth/login", lambda i: "alice"),
            "login, tutorial's pbkdf2 account": ("/auth/login", lambda i: "legacy"),
            "login, unknown name": ("/auth/login", lambda i: f"nobody{i}"),
            "register, taken name": ("/auth/register", lambda i: "alice"),
            "register, free name": ("/auth/register", lambda i: f"newcomer{i}"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        answers: dict[str, set[str]] = {name: set() for name in cases}
        for i in range(-1, args.rounds):  # round -1 warms up (the unknown name's hash)
            for name, (path, username) in cases.items():
                visitor = app.test_client()
                start, start_cpu = time.perf_counter(), time.process_time()
                response = visitor.post(
                    path, data={"username": username(i), "password": "guess-123"}
                )
                if i >= 0:
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
                page = (
                    visitor.get(response.headers["Location"]).text
                    if response.status_code == 302
                    else response.text
                )
                words = " ".join(FLASH.findall(page)).replace(username(i), "NAME")
                answers[name].add(f"{response.status_code} {words}")
        for name in cases:
            t = sorted(times[name])
            print(
                f"{name:38} CPU median {statistics.median(cpu[name]) * 1000:6.1f} ms,"
                f" wall median {statistics.median(t) * 1000:6.1f} ms"
                f" (p10 {t[len(t) // 10] * 1000:6.1f}, p90 {t[len(t) * 9 // 10] * 1000:6.1f})"
                f"\n{'':38} answer: {' | '.join(sorted(answers[name]))}"
            )


if __name__ == "__main__":
    main()
