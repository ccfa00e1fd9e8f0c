# ovos-realtime gateway, standalone.  docker build -t ovos-realtime . && docker run -p 8080:8080 -v ovos-realtime:/data ovos-realtime
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# libatomic1: regopy's rego-cpp links it and the slim image lacks it (the gateway dies at import)
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libatomic1 \
    && rm -rf /var/lib/apt/lists/*

COPY requirements/ requirements/
COPY setup.py README.md ./
COPY ovos_realtime_gateway/ ovos_realtime_gateway/
COPY ovos_realtime_listener_plugin/ ovos_realtime_listener_plugin/
COPY ovos_realtime_tts_plugin/ ovos_realtime_tts_plugin/
RUN pip install --constraint requirements/constraints.txt . \
    && useradd --system --home /data --uid 10001 ovos \
    && mkdir -p /data && chown ovos /data

USER ovos
VOLUME ["/data"]
EXPOSE 8080
# WebRTC and SIP calls carry media on ephemeral UDP ports (ICE, RTP): for calls, run the container
# with `--network host` (and, for SIP, a config with `sip: {enabled: true, host: 0.0.0.0}`).
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
# Create a key inside the container:  docker exec <ctr> ovos-realtime keys create --project NAME --data-dir /data
ENTRYPOINT ["ovos-realtime"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"]
