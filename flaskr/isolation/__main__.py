"""``python -m flaskr.isolation``: ``flask isolation`` without the app.

No database, no configuration: as the image, the host suite and scripts/isolation-report
run it.
"""

from flaskr.isolation.cli import isolation_command

isolation_command()
