"""A backup drill's load, shared by the backup suite and the container suite: writers who
sign up over HTTP and write while a backup runs, and which of their writes the server had
acknowledged before a given moment (the writes a backup taken then must hold)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from toolkit.images import png
from toolkit.load import Client, Tally, Writer

WRITERS = 8
PASSWORD = "backup drill"
#: Seconds of writing before the backup starts, and after it ends.
BEFORE, AFTER = 3.0, 2.0


def writers(base: str, tally: Tally) -> tuple[list[Writer], int, bytes]:
    """Writers who registered and logged in over HTTP, each with a post to comment on and
    like; the first post carries an image. Returns them, that post's id and the image as
    served (the app re-encodes uploads)."""
    image = png((200, 40, 90))

    def sign_up(i: int) -> tuple[Client, int]:
        client = Client(base, tally, f"drill{i}")
        client.register_and_login(client.name, PASSWORD)
        title = f"{client.name} first"
        client.create_post(title, "To comment on.", image=image if i == 0 else None)
        client.fetch_token()
        return client, client.post_id(title)

    with ThreadPoolExecutor(max_workers=4) as pool:
        signed = list(pool.map(sign_up, range(WRITERS)))
    post_ids = [p for _, p in signed]
    served = signed[0][0].get(f"/{post_ids[0]}/image")
    assert served.status_code == 200
    return (
        [Writer(c, post_ids, seed=i) for i, (c, _) in enumerate(signed)],
        post_ids[0],
        served.content,
    )


def acknowledged_before(tally: Tally, moment: float) -> dict[str, set[str]]:
    """Per kind, the writes the server had acknowledged before ``moment``."""
    found: dict[str, set[str]] = {"post": set(), "comment": set(), "like": set()}
    for r in tally.results:
        if r.ok and r.ended < moment and r.kind in found:
            found[r.kind].add(r.key)
    return found
