# flaskr served by gunicorn: the original image, hardened for production.
# Build and run it with ./scripts/container (Docker or podman); see docs/deploy-container.md.
# No apk step anywhere: CI builds this same file on a Debian stand-in for the base image.
FROM python:3.12.4-alpine3.20

# No .pyc files written at run time (the root filesystem is read-only) and logs unbuffered,
# so `docker logs` shows each line at once; pip keeps no cache and skips its version check.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

ENV VIRTUAL_ENV=/opt/venv
RUN python3 -m venv $VIRTUAL_ENV
ENV PATH="$VIRTUAL_ENV/bin:$PATH"

COPY ./requirements.txt .
# The lock is complete and hashed: pip installs exactly the reviewed files and resolves nothing
# (--no-deps), so an upstream release cannot change the image; pip check proves nothing is missing.
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.txt && pip check

# The database, and everything else the app writes, lives in this one volume: a new container
# on the same volume has every post, user and image. Owned by the app's user, not root.
RUN mkdir -p /var/lib/flaskr && chown 10001:10001 /var/lib/flaskr
ENV FLASKR_INSTANCE_PATH=/var/lib/flaskr
VOLUME ["/var/lib/flaskr"]

COPY ./flaskr flaskr
# Compile the app once at build time: workers start faster and never try to write .pyc files.
RUN python -m compileall -q flaskr

# Apply migrations before the workers start; init-db takes a lock next to the database, so
# several containers starting at once on the same volume migrate it once.
ENV FLASKR_MIGRATE_ON_START=1

# A dedicated non-root user, by number, so no adduser/useradd is needed (busybox or Debian):
# a hole in the app cannot write to its own code or the venv, both owned by root.
USER 10001:10001

EXPOSE 8000

# Liveness with what the image has (Alpine has no curl): Python's urllib against /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# The secret key never goes in the image: pass FLASKR_SECRET_KEY or mount a file and set
# FLASKR_SECRET_KEY_FILE (scripts/container does one or the other); without one it refuses to start.
WORKDIR /flaskr
# Exec form: gunicorn is PID 1 and gets SIGTERM from `docker stop` itself, finishing in-flight
# requests within graceful_timeout; the rest of its settings are in flaskr/gunicorn.conf.py.
ENTRYPOINT ["gunicorn", "--workers", "3", "--timeout", "120", "--bind", "0.0.0.0:8000", "hello:app"]
