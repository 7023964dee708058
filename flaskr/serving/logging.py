"""gunicorn's own logs as JSON lines, like the app's: one access line carries the X-Request-ID.

A gunicorn logger class, not app code: gunicorn sets its logger up before it loads the app,
and bench/ serves other apps under the same settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn import glogging
from gunicorn.config import Config

from flaskr.logs import json_formatter


class JsonLogger(glogging.Logger):
    """Write gunicorn's error and access logs with the app's JSON formatter."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        formatter = json_formatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            "request",
            extra={
                "remote": atoms["h"],
                "method": atoms["m"],
                "path": atoms["U"],
                "query": atoms["q"],
                # atoms["s"], not resp.status_code: gunicorn's own error
                # responses (an exception escaped the app) have no status_code.
                "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                "bytes": atoms["B"],
                "duration_ms": round(request_time.total_seconds() * 1000, 3),
                "request_id": atoms.get("{x-request-id}o"),
                "user_agent": atoms["a"],
            },
        )
