# ovos-realtime: the developer's commands in one place (`make help` lists them). Each target runs
# what the project's own scripts run: `make test` IS the README's test command (scripts/test), the
# one CI runs. docs/releases.md says more.
#
# Images and the Compose stack use podman. On a machine without an image registry (ours):
#   export CONTAINERS_CONF=$PWD/deploy/podman/containers.conf
#   scripts/image-base && make image BASE=localhost/debian:bookworm
# With Docker instead: make compose-up COMPOSE="docker compose"  (and `docker build` the Dockerfiles).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
# the images' base (empty: each Dockerfile's default, the official Python slim image)
BASE ?=
TAG ?= dev
PODMAN ?= podman
COMPOSE ?= podman-compose
COMPOSE_FILE ?= compose.yaml
DIST ?= dist
# pytest's arguments for `make test`, e.g. make test ARGS="-m 'not slow'"
ARGS ?=
BENCHES ?= bench/rest_client_secrets.py bench/audio_transcode.py bench/realtime_append.py \
	bench/stt_accuracy.py bench/turn_latency.py bench/speech_memory.py bench/tts_first_audio.py \
	bench/webrtc_calls.py bench/store_growth.py bench/replicas.py
BUILD_ARGS := $(strip --format docker $(if $(BASE),--build-arg BASE=$(BASE)))

.PHONY: help install lint test bench package image compose-up compose-down scan docs

help: ## list the targets
	@echo "make TARGET  (variables: BASE, TAG, PODMAN, COMPOSE, COMPOSE_FILE, DIST, ARGS, BENCHES)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## the Debian packages and .venv with the test and lint extras, as scripts/test installs them
	scripts/install-system-deps test
	scripts/bootstrap test,lint

lint: ## ruff (lint and format) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: ## the README's test command: installs what it needs, static checks, the whole suite (ARGS go to pytest)
	scripts/test $(ARGS)

bench: ## the benchmarks of docs/performance.md, one after the other (BENCHES to choose)
	@set -e; for bench in $(BENCHES); do echo "== $$bench"; $(PY) $$bench; done

package: ## the sdist and the wheel built from it (as pip builds one) in dist/, then twine check
	rm -rf $(DIST)
	$(PY) -m build --no-isolation --outdir $(DIST) .  # the venv's setuptools and wheel: nothing downloaded
	$(VENV)/bin/twine check --strict $(DIST)/*

image: ## the gateway (Dockerfile) and assistant (Dockerfile.assistant) images, localhost/ovos-realtime[-assistant]:TAG
	$(PODMAN) build $(BUILD_ARGS) -f Dockerfile -t localhost/ovos-realtime:$(TAG) .
	$(PODMAN) build $(BUILD_ARGS) -f Dockerfile.assistant -t localhost/ovos-realtime-assistant:$(TAG) .

compose-up: ## the assistant with Prometheus, TURN and Redis (compose.yaml), in the background
	$(COMPOSE) -f $(COMPOSE_FILE) up -d

compose-down: ## stop the Compose stack and remove its containers (the volumes stay)
	$(COMPOSE) -f $(COMPOSE_FILE) down

scan: ## pip-audit of the locked dependencies, hadolint on the Dockerfiles
	scripts/audit
	$(VENV)/bin/hadolint Dockerfile Dockerfile.assistant

docs: ## the docs against the code, then README and getting-started run as written (port 8080, minutes)
	$(PY) -m pytest -q -p no:cacheprovider test/test_docs.py test/test_docs_run.py
