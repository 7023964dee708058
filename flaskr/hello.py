"""The WSGI entry point: ``gunicorn ... hello:app`` from inside this folder, as first written.

Only the entry point: the tutorial's ``/hello`` route is defined in ``create_app``. gunicorn
puts the current folder (this package) on ``sys.path``, not its parent, so the parent is added
here to make ``import flaskr`` work both from a checkout and in the image's ``/flaskr``.
"""

import sys
from pathlib import Path

from gunicorn.errors import AppImportError

_parent = str(Path(__file__).resolve().parent.parent)
if _parent not in sys.path:
    sys.path.insert(0, _parent)

from flaskr import create_app  # noqa: E402
from flaskr.config import ConfigError  # noqa: E402


class StartError(ConfigError, AppImportError):
    """A setting the app cannot run with: gunicorn prints the message alone and stops."""


try:
    app = create_app()
except ConfigError as e:
    raise StartError(str(e)) from None
