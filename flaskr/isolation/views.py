"""The operator page /admin/isolation: the isolation report as HTML, for admins only.

It is off unless ISOLATION_PAGE is true, and then shown only to admins (``flask make-admin``).
Everyone else gets the same 404 as for a page that does not exist: the report names
processes, paths and privileges, which help an attacker more than an operator needs to share.
Even admins see the command lines of the app's own processes only (this worker, its
gunicorn master and the master's other workers); the others are listed and counted, their
command lines left out as the CLI's ``--no-commands`` does: they can carry passwords.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template
from werkzeug.wrappers import Response

from flaskr.auth import admin_required
from flaskr.isolation import probe
from flaskr.isolation.formatting import summary_rows, without_commands
from flaskr.isolation.proc import read_status

bp = Blueprint("isolation", __name__, url_prefix="/admin")


def details(section: dict[str, Any]) -> list[tuple[str, str]]:
    """A section's fields as (name, text) pairs; lists of processes are shown apart."""
    reasons = section.get("reasons") or {}
    rows = []
    for key, value in section.items():
        if key in ("reasons", "visible", "packages"):
            continue
        if value is None:
            text = f"unknown ({reasons[key]})" if key in reasons else "none"
        elif isinstance(value, dict | list):
            text = json.dumps(value) if value else "none"
        else:
            text = str(value)
        rows.append((key, text))
    return rows


def app_processes() -> set[int]:
    """This process, its parent (gunicorn's master) and the parent's other children."""
    parent = os.getppid()
    family = {os.getpid(), parent}
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # pragma: no cover - no /proc: nothing else to show anyway
        return family
    for pid in pids:
        status, _ = read_status("/", pid)
        if status is not None and status.get("PPid") == str(parent):
            family.add(int(pid))
    return family


def collect() -> dict[str, Any]:
    """The report, with only the app's own command lines."""
    family = app_processes()
    return without_commands(probe.collect(), keep=lambda p: p["pid"] in family)


@bp.before_request
def only_when_enabled() -> None:
    """Without ISOLATION_PAGE the pages answer as pages that do not exist, to admins too."""
    if current_app.config.get("ISOLATION_PAGE") is not True:
        abort(404)


@bp.get("/isolation")
@admin_required
def report() -> Response:
    """Collect the report now and show it."""
    data = collect()
    sections = {
        name: details(data[name])
        for name in ("dependencies", "processes", "container", "supervisor", "privileges")
    }
    page = render_template(
        "admin/isolation.html",
        report=data,
        summary=summary_rows(data),
        sections=sections,
    )
    response = current_app.response_class(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/isolation.json")
@admin_required
def report_json() -> Response:
    """The same report as JSON, for `flask isolation compare` and the end-to-end suites.

    Collected inside the serving worker, so it shows the sandbox the service really runs in.
    """
    response = jsonify(collect())
    response.headers["Cache-Control"] = "no-store"
    return response
