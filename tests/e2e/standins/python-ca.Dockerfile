# Docker's stand-in for python:3.12.4-alpine3.20: the bookworm Python root filesystem, trusting
# the host's CA bundle (ca.crt in the build context) for pip, as a company's base image does
# behind a TLS-inspecting proxy: `docker build` cannot mount it as podman's build does.
ARG RAW
FROM $RAW
COPY ca.crt /etc/ssl/certs/ca-certificates.crt
RUN printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf
