# The project's verbs. Every CI job is one of these targets, so a laptop runs what CI runs.
# Needs only python3 (>= 3.11) and make: uv and the environment are set up on first use.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
MODEL := models/model.skops
PORT ?= 8000
HOST ?= 127.0.0.1
IMAGE ?= mlservice:local

# uv from PATH when there is one, else a private copy bootstrapped with pip.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never

# The help texts may name these variables; help shows their values.
HELP_VARIABLES := HOST PORT IMAGE

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) \
		| sed $(foreach v,$(HELP_VARIABLES),-e 's|\$$($(v))|$($(v))|g') \
		| awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install, so start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
$(BIN)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

.PHONY: env
env: $(BIN)/.synced ## Create the virtual environment from uv.lock

# App Engine installs requirements.txt with pip; its "." line installs the project itself. It gets
# the skops group too, so it serves any model card (docs/deploy/appengine.md).
requirements.txt: pyproject.toml uv.lock | $(UV)
	$(UV) export --frozen --no-dev --group skops --no-hashes --no-editable --quiet --output-file $@

.PHONY: requirements
requirements: requirements.txt ## Re-export requirements.txt (App Engine) from uv.lock

# Retrain when the contract, the training data (data/training/), the training code or the locked
# scikit-learn changes.
$(MODEL): $(BIN)/.synced src/mlservice/model.toml $(wildcard data/training/*) \
		src/mlservice/training.py src/mlservice/contract.py src/mlservice/validation.py
	$(BIN)/mlservice train --output $@

.PHONY: model
model: $(MODEL) ## Train the model if it is missing or stale

.PHONY: curves
curves: $(MODEL) ## Draw the model card's ROC and precision-recall curves per class as SVG files in models/
	$(BIN)/mlservice export-curves $(MODEL:.skops=.json) --output-dir $(dir $(MODEL))

# Loopback only by default (the image and the platforms listen on 0.0.0.0); HOST=0.0.0.0 to share.
.PHONY: run
run: $(MODEL) ## Serve the page and API with gunicorn on http://$(HOST):$(PORT)
	HOST=$(HOST) PORT=$(PORT) $(BIN)/mlservice-server

.PHONY: format
format: $(BIN)/.synced ## Rewrite code in the project's style
	$(BIN)/ruff check --fix --quiet . $(PY_SCRIPTS)
	$(BIN)/ruff format --quiet . $(PY_SCRIPTS)

# Executables without an extension, told apart by their shebang, so ruff and shellcheck see them.
SCRIPTS := $(filter-out %.py %.json %.md,$(wildcard .ci/* scripts/* deploy/*))
SH_SCRIPTS = $(shell grep -lsE '^#!.*[/ ](ba)?sh$$' $(SCRIPTS))
PY_SCRIPTS = $(shell grep -lsE '^#!.*[/ ]python3?$$' $(SCRIPTS))

.PHONY: lint
lint: $(BIN)/.synced ## Static checks: ruff, actionlint, zizmor, hadolint, shellcheck
	$(BIN)/ruff check . $(PY_SCRIPTS)
	$(BIN)/ruff format --check . $(PY_SCRIPTS)
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck
	$(BIN)/zizmor --offline --quiet .
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck $(SH_SCRIPTS)

.PHONY: test
# One pytest worker per core (pytest-xdist); the 10 slowest tests are listed after every run.
PYTEST_WORKERS ?= auto
test: lint $(MODEL) ## Every check: lint, then the tests with branch coverage >= 90%
	$(BIN)/pytest -n $(PYTEST_WORKERS) --durations=10 --cov --cov-report=term --cov-report=xml

.PHONY: bench
bench: $(MODEL) ## Throughput and latency with wrk, then make memory (see docs/performance.md)
	@# memory runs even when a throughput target is missed; the bench's status is kept.
	$(BIN)/python scripts/bench.py; status=$$?; $(BIN)/python scripts/memory.py && exit $$status

.PHONY: memory
memory: $(MODEL) ## Server PSS at rest and while 2 workers parse maximal bodies (docs/performance.md)
	$(BIN)/python scripts/memory.py

# make test fuzzes with 500 examples per API operation; this runs many more.
FUZZ_EXAMPLES ?= 10000
.PHONY: fuzz
fuzz: $(MODEL) ## Fuzz every API operation in the OpenAPI document (schemathesis), long run
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/test_fuzz.py

# CPU-heavy (minutes per module): MODULES="config model" runs a few. Fast tests only, and the
# deploy scripts' tests (real gcloud and aws against the stand-ins).
MODULES ?= config contract model validation api cards answers logs telemetry metrics deploy.common deploy.lightsail \
	deploy.appengine deploy.heroku scripts.plan_deploys scripts.push_tested_image
MODULES += rename_rules  # template-only
.PHONY: mutation
mutation: $(MODEL) ## Mutation testing of the core modules and deploy/ (mutmut): score and survivors per module
	$(BIN)/python scripts/mutation.py $(MODULES)

.PHONY: screenshot
screenshot: $(MODEL) ## Refresh docs/screenshot.png and docs/model-card.png from the browser test (Chromium)
	SCREENSHOT_PATH=docs/screenshot.png MODEL_CARD_SCREENSHOT_PATH=docs/model-card.png \
		$(BIN)/pytest tests/test_browser.py -k screenshot --no-cov -q

.PHONY: soak
soak: $(MODEL) ## 60 s of wrk load on gunicorn: no errors, flat worker memory (docs/performance.md)
	$(BIN)/python scripts/soak.py

# Every locked package, dev tools included, against PyPI's advisory data; --strict fails when a
# package cannot be looked up, so an unreachable index is never a silent pass.
.PHONY: audit
audit: $(BIN)/.synced ## Known vulnerabilities in the locked dependencies (pip-audit)
	$(UV) export --frozen --quiet --format requirements-txt --no-emit-project --all-groups \
		--output-file $(VENV)/audit-requirements.txt
	$(BIN)/pip-audit --strict --disable-pip --require-hashes --progress-spinner off \
		--requirement $(VENV)/audit-requirements.txt

# --- Container image (docs/container.md) ----------------------------------------------------
# Base image: the Dockerfile's literal python:3.13-slim. Offline, .ci/base-image tags the Debian
# stand-in (or $(BASE_IMAGE) if set) locally under that name, and the build uses the local image.
# The classic builder is used when buildx is missing.
# --network host: a dockerd started with --iptables=false (.ci/ensure-docker) gives bridged
# build containers no route out; set DOCKER_BUILD_FLAGS= where the default network works.
DOCKER_BUILD_FLAGS ?= --network host
export DOCKER_BUILDKIT ?= $(shell docker buildx version >/dev/null 2>&1 && echo 1 || echo 0)
# OCI labels. The source URL loses any credentials and becomes https:// for scp-style remotes.
IMAGE_SOURCE = $(shell git config --get remote.origin.url 2>/dev/null \
	| sed -E 's#^git@([^:]+):#https://\1/#; s#://[^/@]+@#://#; s#\.git$$##')
IMAGE_REVISION = $(shell git rev-parse -q --verify HEAD 2>/dev/null)
IMAGE_VERSION = $(shell git describe --tags --exact-match 2>/dev/null \
	|| $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

.PHONY: image
image: $(MODEL) ## Build the container image $(IMAGE) around the model in models/
	base="$$(.ci/base-image)"; \
	docker build $(DOCKER_BUILD_FLAGS) \
		--build-arg BASE_IMAGE="$$base" \
		--build-arg UV_VERSION=$(UV_VERSION) \
		--build-arg SOURCE="$(IMAGE_SOURCE)" \
		--build-arg REVISION="$(IMAGE_REVISION)" \
		--build-arg VERSION="$(IMAGE_VERSION)" \
		--build-arg CREATED="$$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--tag $(IMAGE) .

# IMAGE=<ref> on the command line (the pipeline, after its own build) tests that image as is.
.PHONY: container-test
container-test: $(BIN)/.synced $(if $(filter file,$(origin IMAGE)),image) ## Run the image: smoke test, non-root, clean stop, size and cold-start budgets
	IMAGE=$(IMAGE) $(BIN)/python scripts/container-test

# Not dry runs: the real gcloud and AWS CLI against the stand-ins in tests/standins, real pushes to
# a local registry, each smoke test against the running image; then one failure per target.
.PHONY: rehearse
rehearse: $(BIN)/.synced $(if $(filter file,$(origin IMAGE)),image) ## Deploy $(IMAGE) to stand-ins of all three targets end to end, and roll back once each
	$(BIN)/python scripts/rehearse.py $(IMAGE)

# --- Releases (CONTRIBUTING.md) ------------------------------------------------------------
# Only tags: pushing the tag is left to you, as it deploys to every enabled production environment.
.PHONY: release
release: ## Tag vVERSION on a clean tree (make release VERSION=1.2.3); prints the push command
	@[[ "$(VERSION)" =~ ^[0-9]+\.[0-9]+\.[0-9]+$$ ]] \
		|| { echo "release: give the version as VERSION=X.Y.Z (got '$(VERSION)')" >&2; exit 2; }
	@untracked="$$(git ls-files --others --exclude-standard --directory)"; [[ -z "$$untracked" ]] \
		|| { echo "release: untracked files; commit, delete or ignore them:" >&2; \
			sed 's/^/  /' <<<"$$untracked" >&2; exit 1; }
	@changed="$$(git status --short --untracked-files=no)"; [[ -z "$$changed" ]] \
		|| { echo "release: uncommitted changes; commit or stash them:" >&2; \
			sed 's/^/  /' <<<"$$changed" >&2; exit 1; }
	@! git rev-parse -q --verify "refs/tags/v$(VERSION)" >/dev/null \
		|| { echo "release: tag v$(VERSION) exists already" >&2; exit 1; }
	@branch="$$(git branch --show-current)"; [[ "$$branch" == main ]] \
		|| echo "release: warning: tagging $${branch:-a detached HEAD}, not main" >&2
	git tag -a "v$(VERSION)" -m "Release v$(VERSION)"
	@echo "Tagged v$(VERSION). Push it to test, deploy and publish the release:"
	@echo "  git push origin v$(VERSION)"

.PHONY: clean
clean: ## Remove the environment, the model and caches
	rm -rf $(VENV) .tools models .pytest_cache .ruff_cache .coverage coverage.xml
