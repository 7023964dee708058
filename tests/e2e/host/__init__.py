"""The host suite: scripts/install-host takes a bare Debian 12 with a real systemd to flaskr
under systemd behind nginx, and the result survives reloads, kills, re-installs, upgrades and
reboots without losing a request or a post. Then https as docs/deploy-host.md sets it up:
certbot --nginx against pebble (a real ACME server, in the machine), upgrades and renewals
under load, and install-host --tls-cert with a certificate of the suite's own CA.

The machine is systemd-nspawn on an mmdebstrap root filesystem (see toolkit/machines.py), with a
private network: nginx listens on the machine's own loopback only, and the HTTP clients
(toolkit/machine_client.py) run in its network namespace. The checkout is bound read-only into the
machine and install-host runs there as root, as a user would run it with sudo; the machine
has no network, so pip installs from a wheelhouse built on the host (``--wheels``).

One machine for the whole package (conftest.py), changed by each stage in this order:

1. ``test_1_install.py``: the guide's first install on the bare server, and what it left.
2. ``test_2_reload.py``: `systemctl reload` under load, onto code that cannot serve, twice.
3. ``test_3_upgrade.py``: re-installs and upgrades (from newer checkouts, failing ones, with a
   server name, with the micro-cache); the last install is the original checkout again.
4. ``test_4_operate.py``: the operator's commands, the rollback to the named upgrade of stage
   3 and back, and PostgreSQL (the site is back on SQLite afterwards).
5. ``test_5_survive.py``: kill -9 of the master, a reboot, a backup and its restore.
6. ``test_6_isolation.py``: the isolation report of the service and of a root shell beside it
   (asked for under the default names, which stage 7 stops answering).
7. ``test_7_https.py``: last: from its first test on, the site answers to one name
   (blog.flaskr.test), over https until its last test turns https off.

The order is enforced by tests/e2e/scenario.py: a selected test runs after every test before
it, which are run too (``pytest -m e2e tests/e2e/host -k reboot`` runs stages 1 to 4 and
stage 5 up to the reboot); a later stage file named alone stops collection, saying so.
"""
