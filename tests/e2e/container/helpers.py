"""What the container suite's stages share: the site, its post, and reading the post back."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

from PIL import Image

from toolkit.containers import Engine
from toolkit.ports import free_port
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http


@dataclass
class Site:
    name: str
    volume: str
    port: int
    run_to_200: float

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_site(engine: Engine, name: str, volume: str, **extra: str) -> Site:
    port = free_port()
    settings = {**engine.container_settings(name, volume, port), **extra}
    started = time.monotonic()
    engine.script("run", **settings)
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
    deployed = Site(name, volume, port, time.monotonic() - started)
    print(f"{name}: run to the first 200 in {deployed.run_to_200:.2f}s")
    return deployed


@dataclass
class Post:
    username: str
    password: str
    title: str
    tag: str
    id: int
    image_size: tuple[int, int]
    browser: Visitor


def check_post_readable(site: Site, post: Post) -> None:
    """The post's page, its tags and its image, as anyone sees them."""
    visitor = Visitor(site.base)
    page = visitor.get(f"/{post.id}")
    assert page.status_code == 200
    assert post.title in page.text
    assert f"/tag/{post.tag}" in page.text and "/tag/container" in page.text
    assert f"/{post.id}/image" in page.text
    image = visitor.get(f"/{post.id}/image")
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == post.image_size
    assert str(post.id) in visitor.get(f"/tag/{post.tag}").text
