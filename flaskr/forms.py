"""Forms: field names and messages are the Flask tutorial's; Flask-WTF adds CSRF and limits."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

TITLE_MAX = 200
BODY_MAX = 20_000
COMMENT_MAX = 2_000
TAG_MAX = 32
TAGS_MAX = 10
USERNAME_MAX = 32
PASSWORD_MAX = 1_024  # hashing is deliberately slow: cap what one request can make it do

TAG_PATTERN = re.compile(r"^[\w-]+$")


def split_tags(raw: str | None) -> list[str]:
    """'Flask, python ,flask' -> ['flask', 'python']: lower case, unique, in order."""
    seen: dict[str, None] = {}
    for part in (raw or "").split(","):
        name = part.strip().lower()
        if name:
            seen.setdefault(name, None)
    return list(seen)


def at_most(label: str, limit: int) -> Length:
    """A length limit whose message names the field and the limit."""
    return Length(max=limit, message=f"{label} must be at most {limit} characters.")


class AuthForm(FlaskForm):
    username = StringField(
        "Username",
        validators=[
            DataRequired("Username is required."),
            at_most("Username", USERNAME_MAX),
            Regexp(
                r"^[\w.-]+$",
                message="Username may only hold letters, digits, '.', '-' and '_'.",
            ),
        ],
    )
    password = PasswordField(
        "Password",
        validators=[
            DataRequired("Password is required."),
            at_most("Password", PASSWORD_MAX),
        ],
    )


class PostForm(FlaskForm):
    title = StringField(
        "Title",
        validators=[
            DataRequired("Title is required."),
            at_most("Title", TITLE_MAX),
        ],
    )
    body = TextAreaField(
        "Body",
        validators=[at_most("Body", BODY_MAX)],
    )
    tags = StringField("Tags")
    image = FileField("Image")

    def validate_tags(self, field: StringField) -> None:
        names = split_tags(field.data)
        if len(names) > TAGS_MAX:
            raise ValidationError(f"At most {TAGS_MAX} tags.")
        for name in names:
            if len(name) > TAG_MAX or not TAG_PATTERN.match(name):
                raise ValidationError(
                    f"Tag '{name[:40]}' must be at most {TAG_MAX} letters, digits, '-' or '_'."
                )


class CommentForm(FlaskForm):
    body = TextAreaField(
        "Comment",
        validators=[
            DataRequired("Comment is required."),
            at_most("Comment", COMMENT_MAX),
        ],
    )
