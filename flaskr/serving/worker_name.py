"""What a worker calls itself once it has started, which deploy/systemd/flaskr-reload waits for.

The standard library only: flaskr-reload runs under the system's Python, where flaskr's
packages are not installed, and reads this file from the code it reloads onto.
"""

#: A started worker's name in /proc/PID/comm (`ps -o comm`, top and `systemctl status` show
#: it). The end of post_worker_init takes it: that hook is the last thing gunicorn runs before
#: a worker serves, and a worker that fails before it takes its master down.
STARTED_NAME = "flaskr-worker"


def call_itself_started() -> None:
    """Take STARTED_NAME, so a reload knows this worker serves."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(STARTED_NAME)
    except OSError:
        pass  # no /proc (not Linux): nothing waits for the name there
