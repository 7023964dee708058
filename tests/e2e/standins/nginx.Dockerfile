# Stand-in for nginx:1.28-alpine (deploy/compose.yaml), which CI cannot pull: Debian trixie's
# nginx (1.26), envsubst and wget, imported from an mmdebstrap tarball, with an entrypoint that
# fills in /etc/nginx/templates as the official image's does.
ARG RAW
FROM $RAW
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rm -f /etc/nginx/sites-enabled/default && mkdir -p /etc/nginx/templates
COPY nginx-entrypoint.sh /docker-entrypoint.sh
EXPOSE 80
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/docker-entrypoint.sh"]
