# ovos-realtime: the gateway alone, beside an OVOS you already run (its messagebus_url in a mounted
# settings file). docs/deploy.md says more.
#   docker build -t ovos-realtime .
#   docker run -d -p 8080:8080 -v ovos-realtime:/data ovos-realtime
#   docker exec <container> ovos-realtime keys create --project NAME --data-dir /data
# BASE: any Debian bookworm image with Python 3.11 (the tests use one made with debootstrap).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# PIP_* build args (an index, a CA bundle) reach pip as its settings
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# The dependencies first, pinned by the constraints file: a change to our code does not redo them.
# pip keeps its cache: this stage is discarded, and the cache is the host's when the build
# mounts it (podman build -v ~/.cache/pip:/root/.cache/pip): wheels built from sdists here are reused.
COPY requirements/ requirements/
RUN /opt/venv/bin/pip install --constraint requirements/constraints.txt --requirement requirements/gateway.txt
COPY setup.py README.md ./
COPY ovos_realtime_gateway/ ovos_realtime_gateway/
COPY ovos_realtime_listener_plugin/ ovos_realtime_listener_plugin/
COPY ovos_realtime_tts_plugin/ ovos_realtime_tts_plugin/
RUN /opt/venv/bin/pip install --no-deps --constraint requirements/constraints.txt .

FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# libatomic1: regopy's rego-cpp links it and slim images lack it. The store's owner is uid 10001.
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libatomic1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home ovos \
    && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=build /opt/venv /opt/venv
COPY deploy/image/entrypoint /usr/local/bin/ovos-realtime-entrypoint
COPY deploy/image/gateway.yaml /etc/ovos-realtime/gateway.yaml
ENV PATH=/opt/venv/bin:$PATH HOME=/data PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data
EXPOSE 8080
# WebRTC and SIP calls carry media on ephemeral UDP ports (ICE, RTP): for calls, run the container
# with `--network host` (and, for SIP, settings with `sip: {enabled: true, host: 0.0.0.0}`).
# The store is a volume the entrypoint insists on (no VOLUME here: an anonymous one would hide the
# mistake of running without one).
STOPSIGNAL SIGTERM
# http or https, and the port, as PID 1 (the gateway) was started: `--tls-self-signed` stays healthy
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["ovos-realtime", "healthcheck", "--like-pid", "1"]
ENTRYPOINT ["ovos-realtime-entrypoint"]
CMD ["serve", "--config", "/etc/ovos-realtime/gateway.yaml"]
