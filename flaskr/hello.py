"""The WSGI entry point the seed runs: ``gunicorn ... hello:app`` from inside this folder.

gunicorn puts the current folder (this package) on ``sys.path``, not its parent, so the parent
is added here to make ``import flaskr`` work both from a checkout and in the image's ``/flaskr``.
"""

import sys
from pathlib import Path

_parent = str(Path(__file__).resolve().parent.parent)
if _parent not in sys.path:
    sys.path.insert(0, _parent)

from flaskr import create_app  # noqa: E402

app = create_app()
