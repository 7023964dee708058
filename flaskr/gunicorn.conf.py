"""gunicorn settings shared by the container and the systemd unit.

gunicorn reads this file from its working folder (this one, in both deployments); flags on
the command line, such as the README's ``--workers 3 --timeout 120 --bind ...``, still win.
What the hooks named here do is in flaskr/serving/.
"""

import os
import sys

# gunicorn puts this folder on sys.path, not the one above it: add that one so that `flaskr`
# imports here, before the app (hello.py does the same for the app, which may be loaded
# without these settings). A hook that cannot be imported stops gunicorn at start.
_code_folder = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _code_folder not in sys.path:
    sys.path.insert(0, _code_folder)

from flaskr.serving import hooks  # noqa: E402
from flaskr.serving.logging import JsonLogger  # noqa: E402

# Heartbeat files on a RAM disk: a worker blocked on a slow overlay or disk write is not
# taken for a hung one (the gunicorn docs' advice for containers).
# (/dev/shm is a RAM disk here, not a shared temp file: bandit's B108 does not apply.)
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108

# Access and error logs to stdout/stderr, where `docker logs` and journald collect them,
# one JSON object a line (FLASKR_LOG_FORMAT=text keeps gunicorn's own format).
accesslog = "-"
errorlog = "-"
if os.environ.get("FLASKR_LOG_FORMAT", "json") == "json":
    logger_class = JsonLogger

# Finish in-flight requests on SIGTERM within this many seconds, inside `docker stop`'s 10 s
# and the unit's TimeoutStopSec. No queued connection is reset meanwhile: the master stops
# queueing more and each worker serves what is queued for it before it exits (when_ready and
# worker_exit: flaskr/serving/draining.py; tests/e2e/test_compose.py's rolling restart).
graceful_timeout = 8

# The control socket (gunicornc) is not used by these deployments, and would be written to a
# home folder that a read-only container or a sandboxed unit cannot write.
control_socket_disable = True

# Load the app once, in the master, and fork the workers from it: they share its memory
# (copy-on-write) instead of each importing Flask, SQLAlchemy and flaskr on its own
# (docs/performance.md). The trade-off: a HUP forks new workers from the same master, so it no
# longer loads new code. `systemctl reload flaskr` re-executes the master instead (USR2, then
# the old master stops once the new one serves: deploy/systemd/flaskr-reload), which loads new
# code and new library versions, with no failed request. The container is replaced, never
# reloaded.
preload_app = True

# The hooks, in the order gunicorn calls them; flaskr/serving/hooks.py says what each does.
on_starting = hooks.on_starting
when_ready = hooks.when_ready
pre_fork = hooks.pre_fork
post_worker_init = hooks.post_worker_init
worker_exit = hooks.worker_exit
child_exit = hooks.child_exit

# No gunicorn hook runs before the master loads the app: this runs as the file is read.
hooks.before_the_app_loads()
