"""Stage 6 of the container suite, the last (see __init__.py): shipping the image, a code
change, a registry, a server that pulls. Its last test removes every container and image of
the run."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.e2e.container.helpers import Post, Site, check_post_readable, start_site
from toolkit import ROOT
from toolkit.containers import Engine
from toolkit.docker import Registry

#: What a checkout has but the build context never takes (see .dockerignore).
UNTRACKED = shutil.ignore_patterns("__pycache__", "*.pyc", "instance", "*.sqlite*", "*.sock")


def test_a_template_change_rebuilds_only_the_layers_after_the_code(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The Dockerfile installs the locked packages before it copies the app: a checkout with
    one template changed reuses every layer up to the venv and rebuilds only the last two
    (the code and its compiled bytecode)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for part in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy2(ROOT / part, checkout / part)
    for part in ("flaskr", "scripts", "deploy"):
        shutil.copytree(ROOT / part, checkout / part, ignore=UNTRACKED)
    template = checkout / "flaskr" / "templates" / "base.html"
    template.write_text(template.read_text() + "{# a change #}\n")
    touched = f"localhost/{engine.prefix}:touched"
    engine.images.add(touched)
    started = time.monotonic()
    rebuilt = subprocess.run(  # noqa: S603
        engine.ns.argv([str(checkout / "scripts" / "container"), "build"]),
        env=engine.env(FLASKR_IMAGE=touched),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    before, after = engine.image_layers(image), engine.image_layers(touched)
    assert len(before) == len(after), (before, after)
    assert before[:-2] == after[:-2] and before[-2] != after[-2], (before, after)
    size = int(engine.cli("image", "inspect", "--format", "{{.Size}}", image))
    history = engine.cli("history", image)
    print(
        f"{engine.kind}: {size:,} bytes in {len(before)} layers; rebuild after a template "
        f"change {took:.1f}s\n{history}"
    )


def test_shipped_through_a_registry_and_run_where_pulled(
    engine: Engine, site: Site, post: Post, registry: Registry
) -> None:
    """What a CI pipeline and a server do: tag and push to a registry; on a machine without
    the image, pull it and run it on the data volume, which still has every post."""
    tls = ["--tls-verify=false"] if engine.kind == "podman" else []
    ref = f"{registry.address}/{engine.prefix}:1.0"
    engine.images.add(ref)
    built_id = engine.cli("image", "inspect", "--format", "{{.Id}}", engine.image).strip()
    engine.cli("tag", engine.image, ref)
    started = time.monotonic()
    pushed = engine.cli("push", *tls, ref, timeout=600)
    print(f"{engine.kind} push {ref}: {time.monotonic() - started:.1f}s\n{pushed}")
    # The server has no copy: no container of this run, no image of it (only the base).
    for name in sorted(engine.containers):
        engine.remove_container(name)
    for image in sorted(engine.images):
        engine.cli("rmi", "--force", image, check=False)
    for image in (ref, engine.image):
        assert engine.script("engine", "image", "inspect", image, check=False).returncode != 0
    started = time.monotonic()
    pulled = engine.cli("pull", *tls, ref, timeout=600)
    print(f"{engine.kind} pull {ref}: {time.monotonic() - started:.1f}s\n{pulled}")
    assert engine.cli("image", "inspect", "--format", "{{.Id}}", ref).strip() == built_id
    served = start_site(engine, site.name, site.volume, FLASKR_IMAGE=ref)
    check_post_readable(served, post)
