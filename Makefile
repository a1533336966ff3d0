# makapix-ops: every job is a target. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TS := ./bin/ts
S := ./scripts
# docker-compose: Debian's Compose v1 CLI, only to render the stacks' configs (make check, tests); with
# --no-install-recommends it does not pull in the docker.io engine.
APT_PACKAGES := postgresql-15 postgresql-client-15 mosquitto mosquitto-clients caddy openssl rsync docker-compose
E2E_PACKAGES := docker.io docker-compose debootstrap
# Extra flags for any script: make backup-prod ARGS="--json"
ARGS ?=

.PHONY: help setup setup-e2e test test-unit test-integration test-e2e typecheck bench demo sandbox-up sandbox-down

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---- setup -------------------------------------------------------------------------------
setup: node_modules/.installed ## install the Debian and npm packages (idempotent)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

setup-e2e: setup ## install the e2e tier's packages (docker.io, docker-compose, debootstrap)
	@missing=$$(for p in $(E2E_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ---- tests -------------------------------------------------------------------------------
typecheck: setup
	node_modules/.bin/tsc -p tsconfig.json

test: setup typecheck ## type check, unit and integration tests against real services
	$(TS) tests/run.ts tests/unit tests/integration

test-unit: setup
	$(TS) tests/run.ts tests/unit

test-integration: setup
	$(TS) tests/run.ts tests/integration

# ---- sandbox -----------------------------------------------------------------------------
USERS ?= 2000
SEED ?= 42
sandbox-up: setup ## start throwaway EA and EB PostgreSQL clusters with seeded data (USERS=, SEED=)
	$(TS) $(S)/sandbox.ts up --users $(USERS) --seed $(SEED) $(ARGS)

sandbox-down: setup ## stop the sandbox clusters and delete their data
	$(TS) $(S)/sandbox.ts down $(ARGS)

demo: setup ## bring up the sandbox and run the main jobs on it
	$(TS) $(S)/demo.ts --users $(USERS) --seed $(SEED) $(ARGS)

bench: setup ## benchmarks: ratios against baselines measured side by side in the same run (BENCH=name)
	$(TS) bench/run.ts $(BENCH)

# ---- isolation audit ---------------------------------------------------------------------
.PHONY: check
check: setup ## prove EA and EB are isolated (compose configs, Caddyfile, env files); ARGS="--json"
	$(TS) $(S)/check.ts $(ARGS)
