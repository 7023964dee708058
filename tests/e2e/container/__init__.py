"""The container suite: on each engine (podman, and Docker Engine with a dockerd of the
suite's own), the unchanged Dockerfile built and run through scripts/container, with the host's
Python hidden, and checked from outside over HTTP and through a terminal.

CI cannot pull python:3.12.4-alpine3.20: a Debian bookworm stand-in made by mmdebstrap is
tagged with that name (once; later runs find it in the suite's storage of each engine).

Per engine (conftest.py's ``engine``, a lane: podman's whole run, then Docker's), one image
and one site (a container on a data volume, with a person's post), changed by each stage in
this order; a stage's other containers are its own, removed by it:

1. ``test_1_install.py``: the build and the site's container, and what runs inside it.
2. ``test_2_survive.py``: a first start racing two others, a backup and restore drill, then
   the site stopped with a request in flight, run again on its volume and upgraded.
3. ``test_3_upgrade.py``: the guide's commands in order: upgrades and rollbacks retag the
   image, put back afterwards (``release_kept``).
4. ``test_4_operate.py``: the app's commands, metrics, a build without the base image (its
   tag removed for the time of the build), PostgreSQL, secrets kept off command lines.
5. ``test_5_isolation.py``: the isolation report from the serving worker and the host.
6. ``test_6_ship.py``: last: a rebuild after a template change, then the image shipped through
   a registry: every container and image of the run removed, pulled, the site run again.

The order is enforced by tests/e2e/scenario.py: a selected test runs after every test before
it on its engine, which are run too (``-k "docker and isolation"`` runs Docker's stages 1 to
4 first); a later stage file named alone stops collection, saying so.
"""
