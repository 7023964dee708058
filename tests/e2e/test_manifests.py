"""The deployment manifests: deploy/compose.yaml through podman-compose's own parser, its
nginx config through a real nginx -t, and every file under deploy/kubernetes/ against the
Kubernetes API schemas (kubernetes-validate ships them: it runs offline). Both tools go in
throwaway venvs, pinned here, never into the project's requirements; their venvs' PyYAML
reads the files, so the project needs no YAML library either."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flaskr.config import INSECURE_KEYS
from tests.e2e.conftest import apt_install
from tests.e2e.servers import ROOT

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
def compose_config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    bin_dir = tool(tmp_path_factory, "podman-compose==1.6.0")
    podman_compose = bin_dir / "podman-compose"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}

    def config(**extra: str) -> subprocess.CompletedProcess:
        # --env-file /dev/null: a developer's own deploy/.env must not change the outcome.
        # --profile backup: the on-demand backup service is shown too.
        return subprocess.run(
            [str(podman_compose), "--env-file", "/dev/null", "--profile", "backup",
             "-f", str(DEPLOY / "compose.yaml"), "config"],
            capture_output=True, text=True, check=False, timeout=120, env={**env, **extra},
        )  # fmt: skip

    missing = config()
    assert missing.returncode != 0
    assert "FLASKR_DB_PASSWORD" in missing.stderr, missing.stderr[-2000:]
    done = config(FLASKR_DB_PASSWORD="not-a-real-password")
    assert done.returncode == 0, done.stderr[-3000:]
    (parsed,) = load_yaml(bin_dir, done.stdout)
    return parsed


def test_compose_file_parses_and_scales_out(compose_config: dict) -> None:
    services = compose_config["services"]
    assert set(services) == {"db", "migrate", "app", "nginx", "backup"}
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


def test_compose_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    """The template as the nginx image renders it, checked by Debian's nginx. Two changes
    for a machine without compose's DNS: the replicas' name becomes 127.0.0.1, and an nginx
    older than 1.27.3 (the image has 1.28) loses the upstream's ``resolve`` flag."""
    apt_install("nginx", commands=("nginx",))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    template = (DEPLOY / "compose" / "nginx.conf").read_text()
    assert "server app:8000 resolve" in template
    rendered = template.replace("${NGINX_LOCAL_RESOLVERS}", "127.0.0.11")
    assert "${" not in rendered
    rendered = rendered.replace("server app:8000", "server 127.0.0.1:8000")
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=True).stderr
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", version)
    assert found, version
    if tuple(map(int, found.groups())) < (1, 27, 3):
        rendered = rendered.replace(" resolve ", " ")
    (tmp_path / "default.conf").write_text(rendered)
    (tmp_path / "nginx.conf").write_text(
        ("user www-data;\n" if os.geteuid() == 0 else "") + f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        f"http {{ access_log off; include {tmp_path}/default.conf; }}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path), "-e",
         str(tmp_path / "error.log")],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
