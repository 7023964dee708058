"""/metrics: each app's own request counts, latency and database errors, for allowed addresses."""

from types import SimpleNamespace

from sqlalchemy.exc import DataError

from toolkit.apps import make_app


def test_metrics_off_by_default(client) -> None:
    assert client.get("/metrics").status_code == 404


def test_metrics_count_requests_by_endpoint_and_status(tmp_path) -> None:
    app = make_app(tmp_path, METRICS=True)
    client = app.test_client()
    for _ in range(3):
        client.get("/hello")
    client.get("/no/such/page")
    text = client.get("/metrics").text
    assert 'flaskr_requests_total{endpoint="hello",method="GET",status="200"} 3.0' in text
    assert 'flaskr_requests_total{endpoint="unmatched",method="GET",status="404"} 1.0' in text
    assert 'flaskr_request_duration_seconds_count{endpoint="hello"} 3.0' in text
    assert "flaskr_database_errors_total 0.0" in text
    assert "process_cpu_seconds_total" in text  # and the process's own, as before


def test_each_app_counts_only_its_own_requests(tmp_path) -> None:
    """A new app (a worker's, a test's) starts at zero, whatever other apps served before."""
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = make_app(tmp_path / "first", METRICS=True).test_client()
    for _ in range(5):
        first.get("/hello")
    second = make_app(tmp_path / "second", METRICS=True).test_client()
    second.get("/hello")
    text = second.get("/metrics").text
    assert 'flaskr_requests_total{endpoint="hello",method="GET",status="200"} 1.0' in text
    assert 'endpoint="hello",method="GET",status="200"} 5.0' in first.get("/metrics").text


def test_metrics_only_for_allowed_addresses(tmp_path) -> None:
    app = make_app(tmp_path, METRICS=True, METRICS_ALLOW=["10.1.1.1"])
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert allowed.status_code == 200


def test_database_errors_are_counted(tmp_path) -> None:
    app = make_app(tmp_path, METRICS=True)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/bad-sql")
    def bad_sql() -> str:
        from sqlalchemy import text

        from flaskr.db import db

        db.session.execute(text("SELECT * FROM no_such_table"))
        return "unreachable"

    client = app.test_client()
    assert client.get("/bad-sql").status_code == 503  # an OperationalError: not ready
    assert _value(client.get("/metrics").text, "flaskr_database_errors_total") == 1


def _value(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(name + " "))
    return float(line.split()[1])


def test_made_up_methods_share_one_series(tmp_path) -> None:
    client = make_app(tmp_path, METRICS=True).test_client()
    for method in ("FOO", "BAR", "X" * 40):
        client.open("/hello", method=method)
    text = client.get("/metrics").text
    assert 'flaskr_requests_total{endpoint="unmatched",method="other",status="405"} 3.0' in text
    assert "FOO" not in text and "BAR" not in text


def test_values_the_database_refuses_are_400s_not_outages(tmp_path) -> None:
    app = make_app(tmp_path, METRICS=True)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    refused = DataError("INSERT", {}, ValueError("text fields cannot contain NUL"))

    @app.get("/bad-value")
    def bad_value() -> str:
        raise refused  # what PostgreSQL's driver raises for a value it cannot store

    client = app.test_client()
    response = client.get("/bad-value")
    assert response.status_code == 400
    assert b"cannot store" in response.data
    # As SQLAlchemy hands it to the engine's listener when the driver raises it.
    app.extensions["flaskr.metrics"].count_database_error(
        SimpleNamespace(sqlalchemy_exception=refused)
    )
    assert _value(client.get("/metrics").text, "flaskr_database_errors_total") == 0


def test_a_refused_scrape_is_logged_once_naming_the_address_and_the_setting(
    tmp_path, capfd
) -> None:
    """Behind Docker's published port the host's curl comes from the bridge's gateway: the
    client gets a plain 404, the operator one log line saying which address and which setting."""
    client = make_app(tmp_path, METRICS=True).test_client()
    gateway = {"REMOTE_ADDR": "172.17.0.1"}
    for _ in range(3):
        refused = client.get("/metrics", environ_base=gateway)
        assert refused.status_code == 404 and "172.17" not in refused.text
    seen = "".join(capfd.readouterr())
    lines = [line for line in seen.splitlines() if "/metrics refused" in line]
    assert [line.split("] ", 1)[1] for line in lines] == [
        "/metrics refused to 172.17.0.1: not in FLASKR_METRICS_ALLOW (127.0.0.1, ::1); add it "
        "there, or scrape from inside (scripts/container metrics)"
    ]


def test_metrics_off_logs_nothing(tmp_path, capfd) -> None:
    client = make_app(tmp_path).test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 404
    assert "/metrics refused" not in "".join(capfd.readouterr())
