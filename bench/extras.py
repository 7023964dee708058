"""Add what `flask seed` does not make, through the app's own models: one post to find
("Needle in a haystack", the rare search term), with a tag, comments, a like and an image,
so the post page shows every part. Prints its id as JSON.

Run by bench/data.py as ``python -m bench.extras`` from the checkout, with the project's
venv and the same FLASKR_* environment as gunicorn."""

from __future__ import annotations

import json

from sqlalchemy import select

from flaskr import create_app
from flaskr.db import db
from flaskr.models import Comment, Image, Like, Post, Tag, User
from toolkit.images import png

NEEDLE = "Needle in a haystack"


def main() -> None:
    app = create_app()
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "demo"))
        assert user is not None, "run `flask seed` first: it makes the user 'demo'"
        tag = db.session.scalar(select(Tag).where(Tag.name == "python"))
        post = Post(
            author_id=user.id,
            title=NEEDLE,
            body="The one post whose title holds *needle*.\n\n- found by search\n- or not",
            tags=[tag] if tag is not None else [],
        )
        db.session.add(post)
        db.session.flush()
        for n in range(3):
            db.session.add(Comment(post_id=post.id, author_id=user.id, body=f"Comment **{n}**"))
        db.session.add(Like(user_id=user.id, post_id=post.id))
        picture = png((10, 120, 200), (64, 48))
        db.session.add(
            Image(post_id=post.id, mimetype="image/png", width=64, height=48, data=picture)
        )
        db.session.commit()
        print(json.dumps({"needle_id": post.id}))


if __name__ == "__main__":
    main()
