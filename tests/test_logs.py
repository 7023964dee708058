import json
import logging

from pythonjsonlogger.json import JsonFormatter

from flaskr import create_app, logs
from toolkit.apps import make_app


def test_request_id_is_made_up_and_returned(client) -> None:
    first = client.get("/hello").headers["X-Request-ID"]
    second = client.get("/hello").headers["X-Request-ID"]
    assert len(first) == 32 and first != second


def test_request_id_is_taken_from_the_proxy(client) -> None:
    response = client.get("/hello", headers={"X-Request-ID": "abc-123.x"})
    assert response.headers["X-Request-ID"] == "abc-123.x"


def test_forged_request_id_is_replaced(client) -> None:
    bad = 'x" injected\nline'
    response = client.get("/hello", headers={"X-Request-ID": "x" * 129})
    assert response.headers["X-Request-ID"] != "x" * 129
    response = client.get("/", headers={"X-Request-ID": bad.replace("\n", "")})
    assert response.headers["X-Request-ID"] != bad.replace("\n", "")


def test_app_logs_json_lines_with_request_id(tmp_path, capsys) -> None:
    app = make_app(tmp_path, TESTING=False)
    assert not app.logger.propagate

    @app.get("/log")
    def log_something() -> str:
        app.logger.warning("something happened")
        return "ok"

    app.test_client().get("/log", headers={"X-Request-ID": "req-42"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    event = next(line for line in lines if line["message"] == "something happened")
    assert event["request_id"] == "req-42"
    assert event["level"] == "WARNING"
    assert event["path"] == "/log"
    assert "time" in event


def test_text_logs_when_asked(tmp_path) -> None:
    app = make_app(tmp_path, TESTING=False, LOG_FORMAT="text")
    assert not any(isinstance(h.formatter, JsonFormatter) for h in app.logger.handlers)


def test_filter_outside_requests_adds_nothing() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert logs.RequestIdFilter().filter(record)
    assert not hasattr(record, "request_id")


def test_init_db_writes_only_json_lines_into_a_deployments_logs(tmp_path, capfd) -> None:
    """A container migrating at start writes into `docker logs`: every line, Alembic's and
    init-db's own, is JSON there."""
    app = create_app({"SECRET_KEY": "s-9f86d081884c7d65a2f0e3b1c4d7e6f8"})
    result = app.test_cli_runner().invoke(args=["init-db"])
    captured = capfd.readouterr()
    lines = (result.output + captured.out + captured.err).splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert {r["logger"] for r in records} >= {"alembic.runtime.migration", "flaskr"}
    assert "Initialized the database." in [r["message"] for r in records]
