"""Forms: field names and messages are the Flask tutorial's; Flask-WTF adds CSRF and limits."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from flask import flash
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from markupsafe import Markup
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields import Field
from wtforms.validators import DataRequired, Length, ValidationError

from flaskr.accounts import (
    EMAIL_MAX,
    PASSWORD_MAX,
    USERNAME_MAX,
    email_problem,
    password_problem,
    username_problem,
)
from flaskr.rendering import RenderTooCostly, render

TITLE_MAX = 200
BODY_MAX = 20_000
COMMENT_MAX = 2_000
TAG_MAX = 32
TAGS_MAX = 10
PASSKEY_NAME_MAX = 64

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


def required(label: str, limit: int, *rules: Any) -> list[Any]:
    """The validators of a field that must be filled in and is bounded, plus ``rules``."""
    return [DataRequired(f"{label} is required."), at_most(label, limit), *rules]


def follows(label: str, problem: Callable[[str], str | None]) -> Callable[[FlaskForm, Field], None]:
    """Check a field by an account rule of accounts.py, which create-user checks too."""

    def check(_form: FlaskForm, field: Field) -> None:
        found = problem(field.data or "")
        if found is not None:
            raise ValidationError(f"{label} {found}.")

    return check


def flash_errors(form: FlaskForm) -> None:
    """Show the first error of each field as a flash message, like the tutorial."""
    for errors in form.errors.values():
        flash(errors[0], "error")


def no_control_characters(
    label: str, pattern: re.Pattern[str] = CONTROL
) -> Callable[[FlaskForm, Field], None]:
    """Refuse text holding control characters, naming the field."""

    def check(_form: FlaskForm, field: Field) -> None:
        if field.data and pattern.search(field.data):
            raise ValidationError(f"{label} may not contain control characters.")

    return check


class MarkdownField(TextAreaField):
    """A Markdown body, rendered once when it validates: ``html`` holds the result to store.

    Rendering is what the body may cost (flaskr/rendering.py): a body whose HTML or rendering
    time is out of proportion is refused with the reason. A body refused already (too long,
    control characters) is never rendered: rendering half a megabyte only to refuse it cost
    seconds of CPU.
    """

    html: Markup | None = None
    #: CPU seconds the render took, refused or not (what render_budget charges).
    cost: float = 0.0

    def post_validate(self, form: FlaskForm, validation_stopped: bool) -> None:
        self.html, self.cost = None, 0.0
        if validation_stopped or self.errors:
            return
        started = time.thread_time()
        try:
            self.html = render(self.data or "")
        except RenderTooCostly as e:
            self.errors.append(str(e))
        finally:
            self.cost = time.thread_time() - started


class LoginForm(FlaskForm):
    """Any name may be tried: accounts from before the pattern existed still log in."""

    username = StringField("Username", validators=required("Username", USERNAME_MAX))
    password = PasswordField("Password", validators=required("Password", PASSWORD_MAX))


def new_password(label: str = "Password") -> PasswordField:
    """A password being chosen: long enough, and bounded like every password."""
    return PasswordField(
        label, validators=[DataRequired(f"{label} is required."), follows(label, password_problem)]
    )


class RegisterForm(LoginForm):
    """The rules of a new account are accounts.py's: create-user follows the same."""

    username = StringField(
        "Username",
        validators=[DataRequired("Username is required."), follows("Username", username_problem)],
    )
    password = new_password()


class PasswordChangeForm(FlaskForm):
    current = PasswordField(
        "Current password", validators=required("Current password", PASSWORD_MAX)
    )
    password = new_password("New password")


class ForgotForm(FlaskForm):
    name = StringField(
        "Username or e-mail address",
        validators=required("Username or e-mail address", EMAIL_MAX),
    )


class ResetForm(FlaskForm):
    password = new_password("New password")


class EmailForm(FlaskForm):
    """A new address (empty: remove it), with the password as proof it is the owner asking."""

    email = StringField("New e-mail address", validators=[at_most("E-mail address", EMAIL_MAX)])
    current = PasswordField(
        "Current password", validators=required("Current password", PASSWORD_MAX)
    )

    def validate_email(self, field: StringField) -> None:
        field.data = (field.data or "").strip()
        if field.data:
            follows("E-mail address", email_problem)(self, field)


#: A code from an authenticator app (6 digits) or a recovery code (16 letters and dashes).
CODE_MAX = 32


class SecondStepForm(FlaskForm):
    """The second step of logging in: a code from the app, or else a recovery code."""

    code = StringField("Code from your authenticator app", validators=[at_most("Code", CODE_MAX)])
    recovery = StringField("Or a recovery code", validators=[at_most("Recovery code", CODE_MAX)])

    def validate_code(self, field: StringField) -> None:
        if not (field.data or "").strip() and not (self.recovery.data or "").strip():
            raise ValidationError("Type the code from your app, or a recovery code.")


class PasskeyAddForm(FlaskForm):
    """Adding a passkey: a name to tell it from the others, and the password as proof."""

    name = StringField(
        "Name", validators=required("Name", PASSKEY_NAME_MAX, no_control_characters("Name"))
    )
    current = PasswordField(
        "Current password", validators=required("Current password", PASSWORD_MAX)
    )


class PasskeyRemoveForm(FlaskForm):
    """Removing a passkey: which one (its choices are the account's), and the password."""

    passkey = SelectField("Passkey", coerce=int)
    # Not "current": the add form on the same page has that field (and its id).
    password = PasswordField(
        "Current password", validators=required("Current password", PASSWORD_MAX)
    )


class SecondFactorForm(FlaskForm):
    """Adding or removing a second factor: a code of it, and the password as proof."""

    code = StringField("Code", validators=required("Code", CODE_MAX))
    current = PasswordField(
        "Current password", validators=required("Current password", PASSWORD_MAX)
    )


class PostForm(FlaskForm):
    title = StringField(
        "Title", validators=required("Title", TITLE_MAX, no_control_characters("Title"))
    )
    body = MarkdownField(
        "Body",
        validators=[at_most("Body", BODY_MAX), no_control_characters("Body", BODY_CONTROL)],
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
    body = MarkdownField(
        "Comment",
        validators=required("Comment", COMMENT_MAX, no_control_characters("Comment", BODY_CONTROL)),
    )
