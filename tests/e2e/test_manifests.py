"""The deployment manifests: deploy/compose.yaml through podman-compose's own parser, its
nginx config through a real nginx -t, and every file under deploy/kubernetes/ against the
Kubernetes API schemas (kubernetes-validate ships them: it runs offline). Both tools go in
throwaway venvs, pinned here, never into the project's requirements; their venvs' PyYAML
reads the files, so the project needs no YAML library either."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from flaskr.secret_key import INSECURE_KEYS
from toolkit import ROOT
from toolkit.packages import need
from toolkit.ports import free_port
from toolkit.tls import issue, make_ca
from toolkit.wait import wait_for_http

DEPLOY = ROOT / "deploy"
KUBERNETES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
ENGINE_OPTIONS = {"pool_size": 5, "pool_recycle": 1800, "pool_pre_ping": True}


def tool(tmp_path_factory: pytest.TempPathFactory, requirement: str) -> Path:
    """A venv holding only ``requirement`` (from the package index pip is set up for)."""
    venv = tmp_path_factory.mktemp(requirement.split("==")[0])
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         requirement],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return venv / "bin"


def offline() -> list[str]:
    """A prefix that runs a command with no network at all, where this machine allows it."""
    if shutil.which("unshare") and os.geteuid() == 0:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["unshare", "-n"]
    return []


# --- Kubernetes ---------------------------------------------------------------------------


def load_yaml(bin_dir: Path, text: str) -> list:
    """Every document in ``text``, read by PyYAML in a tool's venv and handed back as JSON."""
    done = subprocess.run(
        [str(bin_dir / "python"), "-c",
         "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)"],
        input=text, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [d for d in json.loads(done.stdout) if d]


@pytest.fixture(scope="module")
def kubernetes_tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tool(tmp_path_factory, "kubernetes-validate==1.37.0")


@pytest.fixture(scope="module")
def manifests(kubernetes_tools: Path) -> dict[str, list[dict]]:
    return {p.name: load_yaml(kubernetes_tools, p.read_text()) for p in KUBERNETES}


@pytest.fixture(scope="module")
def resources(manifests: dict[str, list[dict]]) -> dict[str, dict]:
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc
        for docs in manifests.values()
        for doc in docs
    }


@pytest.mark.parametrize("path", KUBERNETES, ids=lambda p: p.name)
def test_kubernetes_manifest_matches_the_schemas(
    kubernetes_tools: Path, manifests: dict[str, list[dict]], path: Path
) -> None:
    done = subprocess.run(
        [*offline(), str(kubernetes_tools / "kubernetes-validate"), "--strict", "--kubernetes-version", "1.37.0",
         str(path)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert output.count(" passed ") == len(manifests[path.name]) > 0, output


def test_kubernetes_set_is_complete_and_consistent(resources: dict[str, dict]) -> None:
    found = resources
    assert set(found) >= {
        "Deployment/flaskr",
        "Service/flaskr",
        "Secret/flaskr",
        "Job/flaskr-migrate",
        "Ingress/flaskr",
        "NetworkPolicy/flaskr",
        "CronJob/flaskr-backup",
        "PersistentVolumeClaim/flaskr-backups",
    }, set(found)
    deployment, service = found["Deployment/flaskr"], found["Service/flaskr"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    # The migration pod is not one of the Service's endpoints.
    job_labels = found["Job/flaskr-migrate"]["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= job_labels.items()

    (container,) = pod["spec"]["containers"]
    port = container["ports"][0]
    assert port["containerPort"] == 8000 and service["spec"]["ports"][0]["targetPort"] in (
        port["name"],
        8000,
    )
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(container["resources"]) == {"requests", "limits"}
    for section in container["resources"].values():
        assert set(section) == {"cpu", "memory"}

    security = {**pod["spec"]["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]

    env = {e["name"]: e for e in container["env"]}
    assert env["FLASKR_MIGRATE_ON_START"]["value"] == "0"
    assert json.loads(env["FLASKR_SQLALCHEMY_ENGINE_OPTIONS"]["value"]) == ENGINE_OPTIONS
    key_file = Path(env["FLASKR_SECRET_KEY_FILE"]["value"])
    secret_volume = volumes[mounts[str(key_file.parent)]]["secret"]
    assert secret_volume["secretName"] == "flaskr"
    assert env["FLASKR_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "flaskr"

    job = found["Job/flaskr-migrate"]["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    assert migrate["command"] == ["flask", "--app", "flaskr", "init-db"]
    assert migrate["workingDir"] == "/"
    assert migrate["image"] == container["image"]
    assert job["restartPolicy"] == "Never"
    assert migrate["securityContext"]["readOnlyRootFilesystem"] is True

    ingress = found["Ingress/flaskr"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert ingress["service"]["name"] == "flaskr"
    assert ingress["service"]["port"]["name"] == service["spec"]["ports"][0]["name"]

    # Only the ingress controller reaches the pods: nothing else can forge X-Forwarded-For.
    policy = found["NetworkPolicy/flaskr"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"namespaceSelector", "podSelector"}  # one peer: both must match
    assert rule["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]


def test_the_backup_cronjob_dumps_once_a_day_into_its_own_volume(
    resources: dict[str, dict],
) -> None:
    cron = resources["CronJob/flaskr-backup"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and len(cron["schedule"].split()) == 5
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    (dump,) = pod["containers"]
    script = dump["command"][-1]
    assert "pg_dump --format=custom" in script and 'mv "$f.partial" "$f"' in script
    assert dump["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "flaskr", "key": "database_url"}
    security = {**pod["securityContext"], **dump["securityContext"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in dump["volumeMounts"] if m["mountPath"] == "/backups"]
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in resources


def test_the_secret_template_holds_no_secret(resources: dict[str, dict]) -> None:
    secret = resources["Secret/flaskr"]
    assert "data" not in secret  # base64 would hide a real value from review
    assert secret["stringData"]["secret_key"] in INSECURE_KEYS  # the app refuses to run on it
    assert "change-me" in secret["stringData"]["database_url"]


# --- Compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tool(tmp_path_factory, "podman-compose==1.6.0")


def compose_config_of(bin_dir: Path, files: list[str], **env: str) -> subprocess.CompletedProcess:
    """`podman-compose -f FILE... config` with only ``env`` of the FLASKR_ variables set."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}, **env}
    # --env-file /dev/null: a developer's own deploy/.env must not change the outcome.
    # --profile backup, mail: the on-demand backup service and the mail sender are shown too.
    return subprocess.run(
        [str(bin_dir / "podman-compose"), "--env-file", "/dev/null", "--profile", "backup",
         "--profile", "mail",
         *(f"-f{DEPLOY / name}" for name in files), "config"],
        capture_output=True, text=True, check=False, timeout=120, env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def compose_config(compose_tool: Path) -> dict:
    missing = compose_config_of(compose_tool, ["compose.yaml"])
    assert missing.returncode != 0
    assert "FLASKR_DB_PASSWORD" in missing.stderr, missing.stderr[-2000:]
    done = compose_config_of(
        compose_tool, ["compose.yaml"], FLASKR_DB_PASSWORD="not-a-real-password"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (parsed,) = load_yaml(compose_tool, done.stdout)
    return parsed


def test_compose_file_parses_and_scales_out(compose_config: dict) -> None:
    services = compose_config["services"]
    assert set(services) == {"db", "migrate", "app", "nginx", "backup", "mail"}
    mail = services["mail"]
    assert mail["profiles"] == ["mail"]  # started with --profile mail, once mail is set up
    assert mail["entrypoint"] == ["flask", "--app", "flaskr", "send-mail"]
    assert mail["image"] == services["app"]["image"]
    assert mail["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert set(mail["networks"]) == {"backend", "outbound"}
    assert "internal" not in compose_config["networks"]["outbound"]
    backup = services["backup"]
    assert backup["profiles"] == ["backup"]  # not started by `up`: run on demand or on a timer
    assert backup["image"] == services["db"]["image"]  # pg_dump of the server's own major version
    assert "pg_dump --format=custom" in backup["entrypoint"][-1]
    assert backup["depends_on"]["db"]["condition"] == "service_healthy"
    app, migrate, db, lb = (services[n] for n in ("app", "migrate", "db", "nginx"))

    assert app["deploy"]["replicas"] == 3
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert migrate["entrypoint"] == ["flask", "--app", "flaskr", "init-db"]
    assert migrate["working_dir"] == "/"
    assert migrate["restart"] == "no"
    assert migrate["image"] == app["image"]
    assert "entrypoint" not in app and "ports" not in app  # the image's gunicorn, unpublished
    dockerfile = (Path(app["build"]["context"]) / app["build"]["dockerfile"]).resolve()
    assert dockerfile == ROOT / "Dockerfile" and dockerfile.is_file()

    for service in (app, migrate):
        env = service["environment"]
        assert env["FLASKR_MIGRATE_ON_START"] == "0"
        assert env["FLASKR_SECRET_KEY_FILE"] == "/run/secrets/secret_key"
        assert env["FLASKR_DATABASE_URL"].startswith("postgresql://flaskr:")
        assert env["FLASKR_DATABASE_URL"].endswith("@db:5432/flaskr")
        assert json.loads(env["FLASKR_SQLALCHEMY_ENGINE_OPTIONS"]) == ENGINE_OPTIONS
        assert env["FLASKR_PROXY_FIX"] == "1"  # behind compose/nginx.conf, which is one proxy
        assert json.loads(env["FLASKR_TRUSTED_HOSTS"]) == ["localhost", "127.0.0.1"]
        assert service["secrets"] == ["secret_key"]
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert "readyz" in " ".join(app["healthcheck"]["test"])

    # The key is a file-based secret the user generates; it is never in the file or image.
    assert compose_config["secrets"] == {"secret_key": {"file": "./secret_key"}}
    assert "SECRET_KEY" not in json.dumps(compose_config).replace("SECRET_KEY_FILE", "")

    # PostgreSQL keeps its data in a named volume; only nginx publishes a port.
    assert "pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert "pgdata" in compose_config["volumes"]
    assert db["environment"]["POSTGRES_PASSWORD"] == "not-a-real-password"
    assert [s for s in services.values() if "ports" in s] == [lb]
    assert lb["depends_on"]["app"]["condition"] == "service_healthy"
    assert compose_config["networks"]["backend"]["internal"] is True
    (mount,) = lb["volumes"]
    source, target = mount.split(":")[:2]
    assert (DEPLOY / source).resolve() == DEPLOY / "compose" / "nginx.conf"
    assert target == "/etc/nginx/templates/default.conf.template"


def render_compose_nginx(
    tmp_path: Path, tls: bool = False, listen: str = "80", upstream: str = "127.0.0.1:8000"
) -> tuple[str, Path]:
    """compose/nginx.conf (and with ``tls`` compose/tls*.conf, a certificate the test makes and
    deploy/nginx/flaskr-tls.conf) as the nginx image renders and mounts them, into a main
    config for Debian's nginx, serving the name flaskr.test. Changes for a machine without
    compose's DNS: the replicas' name becomes ``upstream``, port 80 ``listen`` (IPv4 only).
    Returns the nginx binary and the main config."""
    need("nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    template = (DEPLOY / "compose" / "nginx.conf").read_text()
    assert "set $flaskr_replicas app:8000;" in template
    rendered = template.replace("${NGINX_LOCAL_RESOLVERS}", "127.0.0.11")
    rendered = rendered.replace("${FLASKR_SERVER_NAME}", "flaskr.test localhost")
    assert "${" not in rendered
    rendered = rendered.replace("app:8000;", f"{upstream};")
    rendered = rendered.replace("listen [::]:80", "# listen [::]:80")
    rendered = rendered.replace("listen 80", f"listen {listen}")
    (tmp_path / "flaskr-tls").mkdir()
    rendered = rendered.replace("/etc/nginx/conf.d/flaskr-tls/", f"{tmp_path}/flaskr-tls/")
    if tls:
        cert, key = issue(make_ca(tmp_path / "tls", "compose test CA"), "site", ["flaskr.test"])
        conf = (DEPLOY / "compose" / "tls.conf").read_text()
        conf = conf.replace("${FLASKR_HTTPS_PORT}", "127.0.0.1:8443")  # compose.tls.yaml's default
        conf = conf.replace("${FLASKR_HTTPS_PUBLIC_PORT}", "")
        assert "${" not in conf
        conf = conf.replace("/etc/nginx/tls/cert.pem", str(cert))
        conf = conf.replace("/etc/nginx/tls/key.pem", str(key))
        conf = conf.replace("/etc/nginx/snippets/", f"{DEPLOY}/nginx/")
        (tmp_path / "flaskr-tls" / "tls-site.conf").write_text(conf)
        default = (DEPLOY / "compose" / "tls-default.conf").read_text()
        (tmp_path / "flaskr-tls" / "tls-default.conf").write_text(default)
    (tmp_path / "default.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        ("user www-data;\n" if os.geteuid() == 0 else "") + f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"http {{ access_log off; include {tmp_path}/default.conf; }}\n"
    )
    return nginx, tmp_path / "nginx.conf"


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_compose_nginx_config_passes_nginx_t(tmp_path: Path, tls: bool) -> None:
    """The template as the nginx image renders it (with compose.tls.yaml's https or without),
    checked by Debian's nginx."""
    nginx, conf = render_compose_nginx(tmp_path, tls)
    done = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_compose_tls_override_mounts_the_certificate(
    compose_tool: Path, compose_config: dict
) -> None:
    """deploy/compose.tls.yaml on top of compose.yaml: port 443 published, the certificate,
    its settings and the https server template mounted into nginx, nothing else changed."""
    files = ["compose.yaml", "compose.tls.yaml"]
    password = {"FLASKR_DB_PASSWORD": "not-a-real-password"}
    missing = compose_config_of(compose_tool, files, **password)
    assert missing.returncode != 0 and "FLASKR_TLS_CERT" in missing.stderr, missing.stderr[-2000:]
    cert = {"FLASKR_TLS_CERT": "/srv/tls/blog.crt", "FLASKR_TLS_KEY": "/srv/tls/blog.key"}
    done = compose_config_of(compose_tool, files, **password, **cert)
    assert done.returncode == 0, done.stderr[-3000:]
    (merged,) = load_yaml(compose_tool, done.stdout)
    lb = merged["services"]["nginx"]
    # Both on loopback unless said otherwise: https was on every address by default.
    assert sorted(lb["ports"]) == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert lb["environment"]["FLASKR_HTTPS_PORT"] == "127.0.0.1:8443"
    assert lb["environment"]["FLASKR_HTTPS_PUBLIC_PORT"] == ""
    mounts = {m.split(":")[1]: m.split(":")[0] for m in lb["volumes"]}
    assert mounts["/etc/nginx/tls/cert.pem"] == "/srv/tls/blog.crt"
    assert mounts["/etc/nginx/tls/key.pem"] == "/srv/tls/blog.key"
    templates = "/etc/nginx/templates/"
    assert (DEPLOY / mounts[templates + "default.conf.template"]).resolve() == (
        DEPLOY / "compose" / "nginx.conf"
    )
    assert (DEPLOY / mounts[templates + "flaskr-tls/tls-site.conf.template"]).resolve() == (
        DEPLOY / "compose" / "tls.conf"
    )
    assert (DEPLOY / mounts[templates + "flaskr-tls/tls-default.conf.template"]).resolve() == (
        DEPLOY / "compose" / "tls-default.conf"
    )
    assert (DEPLOY / mounts["/etc/nginx/snippets/flaskr-tls.conf"]).resolve() == (
        DEPLOY / "nginx" / "flaskr-tls.conf"
    )
    others = {k: v for k, v in merged["services"].items() if k != "nginx"}
    assert others == {k: v for k, v in compose_config["services"].items() if k != "nginx"}


def test_compose_nginx_serves_https_with_the_mounted_certificate(tmp_path: Path) -> None:
    """The rendered https config run for real (on free loopback ports instead of 80 and 443):
    nginx's own answer over https with HTTP/2 and HSTS, and http redirected to https."""
    http_port = free_port()
    https_port = next(p for p in iter(free_port, None) if p != http_port)
    nginx, conf = render_compose_nginx(tmp_path, tls=True, listen=f"127.0.0.1:{http_port}")
    for path in (tmp_path / "flaskr-tls").glob("*.conf"):
        text = re.sub(r"^\s*listen \[::\].*\n", "", path.read_text(), flags=re.M)
        path.write_text(text.replace("listen 443 ", f"listen 127.0.0.1:{https_port} "))
    command = [nginx, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    try:
        ca = tmp_path / "tls" / "ca.pem"
        url = f"https://flaskr.test:{https_port}/nginx-health"
        resolve = f"flaskr.test:{https_port}:127.0.0.1"
        head = subprocess.run(
            ["curl", "-sSI", "--retry", "20", "--retry-connrefused", "--retry-delay", "1",
             "--max-time", "20", "--cacert", str(ca), "--resolve", resolve, url],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.lower()  # fmt: skip
        assert head.startswith("http/2 200"), head
        assert "strict-transport-security: max-age=63072000" in head, head
        plain = subprocess.run(
            ["curl", "-sSI", "-H", "Host: flaskr.test", f"http://127.0.0.1:{http_port}/2?page=1"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert plain.startswith("HTTP/1.1 301"), plain
        assert "Location: https://flaskr.test:8443/2?page=1" in plain, plain
        other = subprocess.run(
            ["curl", "-sS", "-k", "--resolve", f"other.test:{https_port}:127.0.0.1",
             f"https://other.test:{https_port}/"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        assert other.returncode == 35, other.stderr  # refused at the handshake: not our name
        assert "strict-transport-security" not in plain.lower()  # not over http
        health = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{http_port}/nginx-health"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        assert health == "ok\n"  # the compose healthcheck still answers over http
    finally:
        subprocess.run([*command, "-s", "quit"], check=False, capture_output=True, timeout=60)


class AppLike(http.server.BaseHTTPRequestHandler):
    """Answers /app with its own X-Frame-Options, as flaskr does; anything else is refused."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/app" else 404)
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_compose_nginx_answers_its_name_only_and_heads_its_own_pages(tmp_path: Path) -> None:
    """nginx's own answers (a 502 when no replica answers, a 413) carry the security headers
    and no version, and the app's own headers pass alone; any other Host is dropped without
    an answer; the healthcheck still answers."""
    app = http.server.HTTPServer(("127.0.0.1", 0), AppLike)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    # Ports the app does not hold already (the kernel may hand a just-freed port out again).
    taken = {app.server_port}
    port = next(p for p in iter(free_port, None) if p not in taken)
    upstream = f"127.0.0.1:{app.server_port}"
    nginx, conf = render_compose_nginx(tmp_path, listen=f"127.0.0.1:{port}", upstream=upstream)
    command = [nginx, "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")]
    server = subprocess.Popen([*command, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/nginx-health")
        assert server.poll() is None, (tmp_path / "error.log").read_text()  # ours answered
        app_page = requests.get(base + "/app", headers={"Host": "localhost"}, timeout=10)
        assert app_page.status_code == 200
        assert app_page.headers["X-Frame-Options"] == "SAMEORIGIN"  # the app's, not two
        assert app_page.headers["X-Content-Type-Options"] == "nosniff"  # the app sent none
        app.shutdown()
        app.server_close()  # now no replica answers
        own = requests.get(base + "/", headers={"Host": "localhost"}, timeout=10)
        assert own.status_code == 502
        assert own.headers["Server"] == "nginx"  # server_tokens off: no version
        assert own.headers["X-Content-Type-Options"] == "nosniff"
        assert own.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in own.headers["Content-Security-Policy"]
        assert own.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        too_large = requests.post(
            base + "/create", headers={"Host": "localhost"}, data=b"x" * 6_000_000, timeout=10
        )
        assert too_large.status_code == 413 and too_large.headers["X-Frame-Options"] == "DENY"
        with pytest.raises(requests.ConnectionError):  # 444: closed without an answer
            requests.get(base + "/", headers={"Host": "evil.example"}, timeout=10)
    finally:
        server.terminate()
        server.wait(10)
        app.server_close()
