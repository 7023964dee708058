#!/bin/sh
# Stand-in for the official nginx image's entrypoint, on Debian's nginx: each
# /etc/nginx/templates/*.template becomes /etc/nginx/conf.d/* with the variables of the
# environment filled in (only those: $host and the like stay), NGINX_LOCAL_RESOLVERS taken from
# /etc/resolv.conf when NGINX_ENTRYPOINT_LOCAL_RESOLVERS is set; then nginx as PID 1.
set -eu
if [ -n "${NGINX_ENTRYPOINT_LOCAL_RESOLVERS:-}" ]; then
  NGINX_LOCAL_RESOLVERS=$(awk '$1 == "nameserver" { printf "%s ", $2 }' /etc/resolv.conf)
  export NGINX_LOCAL_RESOLVERS
fi
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -e "$template" ] || continue
  envsubst "$defined" <"$template" >"/etc/nginx/conf.d/$(basename "$template" .template)"
done
exec nginx -g 'daemon off;'
