# Stand-in for postgres:17-alpine (deploy/compose.yaml), which CI cannot pull: Debian's
# PostgreSQL 17 (trixie, imported from an mmdebstrap tarball) with an entrypoint that takes
# the official image's variables.
ARG RAW
FROM $RAW
ENV PATH=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# Fast shutdown, as the official image: SIGTERM would wait for every client to disconnect.
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
