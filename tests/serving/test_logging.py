"""gunicorn's own log lines, JSON like the app's, in the fields the logs are searched by."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config

from flaskr.serving.logging import JsonLogger

ENVIRON = {
    "REQUEST_METHOD": "POST",
    "RAW_URI": "/create?draft=1",
    "PATH_INFO": "/create",
    "QUERY_STRING": "draft=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "10.0.0.7",
    "HTTP_USER_AGENT": "curl/8",
}


def json_logger() -> JsonLogger:
    """gunicorn's logger, set up as gunicorn.conf.py has it: both logs on the standard streams
    (whichever they are now: made inside the test, they are capsys's)."""
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("errorlog", "-")
    return JsonLogger(cfg)


def test_an_access_line_carries_the_request_id(capsys) -> None:
    logger = json_logger()
    response = SimpleNamespace(status="302 FOUND", headers=[("X-Request-ID", "abc-123")], sent=189)
    logger.access(response, SimpleNamespace(headers=[]), ENVIRON, timedelta(microseconds=12345))
    line = json.loads(capsys.readouterr().out)
    assert line == {
        "time": line["time"],
        "level": "INFO",
        "logger": "gunicorn.access",
        "message": "request",
        "remote": "10.0.0.7",
        "method": "POST",
        "path": "/create",
        "query": "draft=1",
        "status": 302,
        "bytes": 189,
        "duration_ms": 12.345,
        "request_id": "abc-123",
        "user_agent": "curl/8",
    }


def test_an_answer_without_a_status_is_logged_as_it_is(capsys) -> None:
    logger = json_logger()
    """gunicorn's own error answer, when one never got a status line: logged, not a crash."""
    response = SimpleNamespace(status=None, headers=[], sent=None)
    logger.access(response, SimpleNamespace(headers=[]), ENVIRON, timedelta(0))
    line = json.loads(capsys.readouterr().out)
    assert line["status"] is None and line["request_id"] is None


def test_gunicorns_own_messages_are_json_lines_too(capsys) -> None:
    logger = json_logger()
    logger.error("Worker (pid:%s) was sent SIGKILL!", 4242)
    line = json.loads(capsys.readouterr().err)
    assert line["level"] == "ERROR" and line["logger"] == "gunicorn.error"
    assert line["message"] == "Worker (pid:4242) was sent SIGKILL!"
