#!/bin/sh
# Stand-in for the official nginx image's entrypoint, on Debian's nginx: each
# /etc/nginx/templates/**/*.template becomes /etc/nginx/conf.d/** (sub-folders too, as the
# official image's 20-envsubst-on-templates.sh does: compose.tls.yaml mounts flaskr-tls/) with
# the variables of the environment filled in (only those: $host and the like stay),
# NGINX_LOCAL_RESOLVERS taken from /etc/resolv.conf when NGINX_ENTRYPOINT_LOCAL_RESOLVERS is
# set; then nginx as PID 1.
set -eu
if [ -n "${NGINX_ENTRYPOINT_LOCAL_RESOLVERS:-}" ]; then
  NGINX_LOCAL_RESOLVERS=$(awk '$1 == "nameserver" { printf "%s ", $2 }' /etc/resolv.conf)
  export NGINX_LOCAL_RESOLVERS
fi
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
cd /etc/nginx/templates
find . -follow -type f -name '*.template' | while read -r template; do
  out=/etc/nginx/conf.d/${template#./}
  mkdir -p "$(dirname "$out")"
  envsubst "$defined" <"$template" >"${out%.template}"
done
cd /
exec nginx -g 'daemon off;'
