"""Tables. ``user`` and ``post`` keep the Flask tutorial's names and columns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from flaskr.db import db

if TYPE_CHECKING:  # db.Model is made at run time: to the type checker, a declarative base
    from sqlalchemy.orm import DeclarativeBase as Model
else:
    Model = db.Model

post_tag = Table(
    "post_tag",
    db.metadata,
    Column("post_id", Integer, ForeignKey("post.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", Integer, ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_post_tag_tag_id", "tag_id", "post_id"),
)


class User(Model):
    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    password: Mapped[str] = mapped_column(Text)
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Sessions carry the number they were issued with; raising it ends them all.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Set by an admin: the account can neither log in nor stay logged in.
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Optional; set only once a link mailed to it was followed (accounts.py, migration 0012).
    email: Mapped[str | None] = mapped_column(Text)
    #: The TOTP secret once enrolment was confirmed, else None (second_factor.py, 0013);
    #: the time step of the last code accepted, so that none is accepted twice.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        # One name whatever its case (migration 0007).
        Index("uq_user_username_lower", func.lower(username), unique=True),
        # One account per address whatever its case; any number without one.
        Index("uq_user_email_lower", func.lower(email), unique=True),
    )


class RecoveryCode(Model):
    """One unused recovery code of an account, as the sha256 of its text; deleted once used."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))


class Passkey(Model):
    """A passkey (WebAuthn credential) of an account: passkeys.py, migration 0014."""

    __tablename__ = "passkey"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    #: The credential's id as the browser sends it (base64url): one account's, site-wide.
    credential_id: Mapped[str] = mapped_column(Text, unique=True)
    #: Its COSE public key, as the authenticator gave it when it was added.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The signature counter it last reported: one that does not go up marks a clone.
    sign_count: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    #: When it last signed in; an answer to a challenge issued before this is refused.
    last_used: Mapped[datetime | None]


class Post(Model):
    __tablename__ = "post"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    created: Mapped[datetime] = mapped_column(server_default=func.current_timestamp(), index=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    #: The body rendered when it was written (flaskr/rendering.py); up to 128 KB, so loaded
    #: only where it is shown. None: shown as plain text until ``flask init-db`` renders it.
    body_html: Mapped[str | None] = mapped_column(Text, deferred=True)
    #: rendering.RENDERER and a mark new at each write (bodies.rendered_mark): another
    #: renderer's HTML is made again; a body changed without a new mark loses its HTML.
    rendered_with: Mapped[str | None] = mapped_column(String(64))

    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)
    tags: Mapped[list[Tag]] = relationship(
        secondary=post_tag, order_by="Tag.name", lazy="selectin", back_populates="posts"
    )
    image: Mapped[Image | None] = relationship(
        back_populates="post", cascade="all, delete-orphan", passive_deletes=True, lazy="noload"
    )
    comments: Mapped[list[Comment]] = relationship(
        back_populates="post",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Comment.id",
        lazy="noload",
    )


class Tag(Model):
    __tablename__ = "tag"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)

    posts: Mapped[list[Post]] = relationship(
        secondary=post_tag, back_populates="tags", lazy="noload"
    )


class Comment(Model):
    __tablename__ = "comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)  # as Post's (at most 20 KB here)
    rendered_with: Mapped[str | None] = mapped_column(String(64))

    post: Mapped[Post] = relationship(back_populates="comments")
    author: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class Like(Model):
    __tablename__ = "post_like"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[int] = mapped_column(
        ForeignKey("post.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Image(Model):
    """An uploaded image, stored in the database so every instance sharing it can serve it."""

    __tablename__ = "image"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), unique=True)
    mimetype: Mapped[str] = mapped_column(String(32))
    width: Mapped[int]
    height: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)

    post: Mapped[Post] = relationship(back_populates="image")


class LoginFailure(Model):
    """A login attempt that failed (or is being checked).

    Counted per account, address and trusted device to throttle guessing (throttle.py).
    """

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(index=True)
    #: The trusted device (a browser that logged in to this account before), or None.
    device: Mapped[str | None] = mapped_column(String(32), index=True)


class RegistrationAttempt(Model):
    """A registration, counted per address and for the whole site to throttle sign-ups.

    See throttle.py; rows older than its window are deleted.
    """

    __tablename__ = "registration_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    remote_addr: Mapped[str] = mapped_column(String(64), index=True)
    #: The address's network: an IPv4 /24 or an IPv6 /48 (throttle._network).
    network: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(index=True)


class MailRequest(Model):
    """A request that may make the site send mail (a reset, a new address to confirm).

    Counted per account, per recipient, per client address and for the whole site, so
    nobody can make the site send mail without bound (throttle.begin_mail).
    """

    __tablename__ = "mail_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The account's id as text, "" when the name or address matched none.
    account: Mapped[str] = mapped_column(String(64), index=True)
    #: The address mail would go to, lower case; "" when none.
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    remote_addr: Mapped[str] = mapped_column(String(64), index=True)
    created: Mapped[datetime] = mapped_column(index=True)


class OutboxMessage(Model):
    """A message to send: written in the request's transaction, sent by ``flask send-mail``.

    See mail.py: a sender claims a row (``claimed_by`` until ``claimed_until``) before it
    sends it, and marks it ``sent`` or schedules the next attempt.
    """

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime]
    #: Not tried before this time (now when written; later after each failure).
    next_attempt: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    sent: Mapped[datetime | None] = mapped_column(index=True)
    #: Given up on: refused for good by the server (5xx), or out of attempts.
    failed: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class RenderCost(Model):
    """CPU time one render of a user's post, comment or preview took.

    Summed per user to bound what each account may make the workers do (render_budget.py).
    """

    __tablename__ = "render_cost"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    created: Mapped[datetime] = mapped_column(index=True)
    cpu_ms: Mapped[int]


class ContentVersion(Model):
    """One row, whose number database triggers raise whenever something a page shows changes.

    The triggers come from migration 0006; the number tells a worker its cached pages still
    hold.
    """

    __tablename__ = "content_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
