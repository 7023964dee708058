"""Forms: field names and messages are the Flask tutorial's; Flask-WTF adds CSRF and limits."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.fields import Field
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from flaskr.rendering import RenderTooCostly, check_cost

TITLE_MAX = 200
BODY_MAX = 20_000
COMMENT_MAX = 2_000
TAG_MAX = 32
TAGS_MAX = 10
USERNAME_MAX = 32
PASSWORD_MAX = 1_024  # hashing is deliberately slow: cap what one request can make it do

TAG_PATTERN = re.compile(r"^[\w-]+$")
#: Control characters break the Atom feed (XML forbids them), PostgreSQL refuses NUL, and
#: none means anything in a title or a post; bodies keep tab, line feed and carriage return.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


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


def no_control_characters(
    label: str, pattern: re.Pattern[str] = CONTROL
) -> Callable[[FlaskForm, Field], None]:
    """Refuse text holding control characters, naming the field."""

    def check(_form: FlaskForm, field: Field) -> None:
        if field.data and pattern.search(field.data):
            raise ValidationError(f"{label} may not contain control characters.")

    return check


def cheap_to_render(_form: FlaskForm, field: Field) -> None:
    """Markdown whose HTML or rendering time is out of proportion is refused when written."""
    try:
        check_cost(field.data or "")
    except RenderTooCostly as e:
        raise ValidationError(str(e)) from None


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
            no_control_characters("Title"),
        ],
    )
    body = TextAreaField(
        "Body",
        validators=[
            at_most("Body", BODY_MAX),
            no_control_characters("Body", BODY_CONTROL),
            cheap_to_render,
        ],
    )
    tags = StringField("Tags", validators=[no_control_characters("Tags")])
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
            no_control_characters("Comment", BODY_CONTROL),
            cheap_to_render,
        ],
    )
