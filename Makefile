# makapix-ops: every job is a target. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
TS := ./bin/ts
S := ./scripts
# What the tools need on the VPS itself.
APT_PACKAGES := postgresql-client-15 openssl restic
# What the tests, the sandbox and the benches start on loopback. Never on the VPS: Debian starts these
# servers on install, on EA's own ports (5432, 80). docker-compose: the v1 CLI, only to render configs;
# with --no-install-recommends it does not pull in the docker.io engine.
# restic: the offsite tests' client (Debian's 0.14); openssh-server: their sftp: repository, an sshd the
# tests start on a loopback high port (see ssh_quiet below: no system sshd on port 22).
TEST_PACKAGES := postgresql-15 mosquitto mosquitto-clients caddy rsync docker-compose restic openssh-server
E2E_PACKAGES := docker.io docker-compose debootstrap
# Extra flags for any script: make backup-prod ARGS="--json"
ARGS ?=

.PHONY: help setup setup-test setup-e2e test test-unit test-integration test-e2e typecheck bench demo sandbox-up sandbox-down sandbox-status

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# ---- setup -------------------------------------------------------------------------------
# Installs whichever of the given Debian packages are missing (idempotent, no recommends).
apt_install = missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

setup: node_modules/.installed ## install what the tools need (npm packages, pg client, openssl); idempotent
	@$(call apt_install,$(APT_PACKAGES))

# openssh-server's postinst starts a system sshd on port 22. Before it is installed: its units are masked
# (a reboot does not start them either) and, for the install only, a policy-rc.d that denies every start
# (Debian's mechanism for "install, do not start"; an existing policy-rc.d is left as it is).
ssh_quiet = if ! dpkg -s openssh-server >/dev/null 2>&1; then \
	  mkdir -p /etc/systemd/system && ln -sfn /dev/null /etc/systemd/system/ssh.service && ln -sfn /dev/null /etc/systemd/system/ssh.socket; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '\043!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && touch /tmp/.makapix-policy-rc; fi; \
	fi

setup-test: setup ## also the servers tests and the sandbox start on loopback (not on the VPS: see TEST_PACKAGES)
	@$(ssh_quiet)
	@$(call apt_install,$(TEST_PACKAGES)); status=$$?; \
	if [ -e /tmp/.makapix-policy-rc ]; then rm -f /usr/sbin/policy-rc.d /tmp/.makapix-policy-rc; fi; exit $$status

setup-e2e: setup-test ## install the e2e tier's packages (docker.io, docker-compose, debootstrap)
	@$(call apt_install,$(E2E_PACKAGES))

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ---- tests -------------------------------------------------------------------------------
typecheck: setup-test
	node_modules/.bin/tsc -p tsconfig.json

test: setup-test typecheck ## type check, unit and integration tests against real services
	$(TS) tests/run.ts tests/unit tests/integration

test-unit: setup-test
	$(TS) tests/run.ts tests/unit

test-integration: setup-test
	$(TS) tests/run.ts tests/integration

# ---- sandbox -----------------------------------------------------------------------------
USERS ?= 2000
SEED ?= 42
sandbox-up: setup-test ## start throwaway EA and EB PostgreSQL clusters with seeded data (USERS=, SEED=)
	$(TS) $(S)/sandbox.ts up --users $(USERS) --seed $(SEED) $(ARGS)

sandbox-down: setup-test ## stop the sandbox clusters and delete their data
	$(TS) $(S)/sandbox.ts down $(ARGS)

sandbox-status: setup-test ## show the sandbox's clusters, ports, sizes and how to use it
	$(TS) $(S)/sandbox.ts status $(ARGS)

demo: setup-test ## bring up the sandbox and run the main jobs on it
	$(TS) $(S)/demo.ts --users $(USERS) --seed $(SEED) $(ARGS)

bench: setup-test ## benchmarks: ratios against baselines measured side by side in the same run (BENCH=name)
	$(TS) bench/run.ts $(BENCH)

# ---- phase 1: the env files (docs/env-files.md) --------------------------------------------
.PHONY: env-files
env-files: setup ## write compose/.env.prod and .env.dev from the running app; ARGS="--dry-run" | "--from FILE" | "--force" | "--json"
	$(TS) $(S)/env-files.ts $(ARGS)

# ---- isolation audit ---------------------------------------------------------------------
.PHONY: check
check: setup ## prove EA and EB are isolated (compose configs, Caddyfile, env files); APP_DIR=/opt/makapix also audits the app's contract; ARGS="--json"
	$(TS) $(S)/check.ts $(if $(APP_DIR),--app-dir $(APP_DIR)) $(ARGS)

# ---- sample data (docs/sample-data.md) ---------------------------------------------------
PCT ?= 10
.PHONY: sample-data
# SEED reaches the script only when given (make sample-data SEED=7): by default each run picks anew.
sample-data: setup ## replace EB's data with an anonymized PCT % sample of EA (PCT=10, SEED=, ARGS="--dry-run" | "--users 12,34")
	$(TS) $(S)/sample-data-to-dev.ts --pct $(PCT) $(if $(filter command line environment,$(origin SEED)),--seed $(SEED)) $(ARGS)

# ---- vault sync (docs/vault-sync.md) ------------------------------------------------------
.PHONY: sync-vault
sync-vault: setup ## copy into EB's vault the files EB's database references; ARGS="--dry-run" | "--prune --yes" | "--json"
	$(TS) $(S)/sync-vault-to-dev.ts $(ARGS)

# ---- credentials (docs/credentials.md) ------------------------------------------------------
# make basic-auth CMD=add NAME=alice [SCOPE=devices] [ARGS="--generate"], or everything in ARGS:
# make basic-auth ARGS="remove alice --yes". USER= works too when given on the command line
# (the shell's own $USER is ignored). Passwords never go on the command line: prompt, stdin, --generate.
CMD ?=
NAME ?=
SCOPE ?=
BASIC_AUTH_USER = $(or $(NAME),$(if $(filter command line,$(origin USER)),$(USER)))
.PHONY: basic-auth mqtt-certs
basic-auth: setup ## who may open EB: CMD=add|remove|rotate|list NAME=alice SCOPE=developers|devices (or ARGS="add alice")
	$(TS) $(S)/gen-basic-auth.ts $(CMD) $(BASIC_AUTH_USER) $(if $(SCOPE),--scope $(SCOPE)) $(ARGS)
mqtt-certs: setup ## an env's MQTT PKI: make mqtt-certs ENV=dev ARGS="init" | "issue player-1" | "revoke player-1" | "renew" | "list"
	@test -n "$(ENV)" || { echo 'usage: make mqtt-certs ENV=dev|prod ARGS="init|issue <device>|revoke <device>|renew|list"' >&2; exit 2; }
	$(TS) $(S)/mqtt-certs.ts --env $(ENV) $(ARGS)

# ---- backups and restore (docs/backup.md) ------------------------------------------------
FILE ?=
ENV ?=
.PHONY: backup-prod restore restore-drill
backup-prod: setup ## verified backup of EA's database into BACKUP_DIR, then rotation; ARGS="--format plain" | "--json --ping URL"
	$(TS) $(S)/backup-prod.ts $(ARGS)
restore: setup ## restore a backup: make restore FILE=/backups/makapix-YYYYMMDD-HHMMSS.dump ENV=dev|prod (prod asks you to type "prod")
	@test -n "$(FILE)" -a -n "$(ENV)" || { echo "usage: make restore FILE=/backups/makapix-YYYYMMDD-HHMMSS.dump ENV=dev|prod" >&2; exit 2; }
	$(TS) $(S)/restore.ts --env $(ENV) --file $(FILE) $(ARGS)
restore-drill: setup ## prove the newest backup restores: scratch database, row counts vs live, dropped (ENV=prod by default)
	$(TS) $(S)/restore.ts --drill --env $(or $(ENV),prod) $(ARGS)

# ---- environments, deploy, cutover (docs/deploy.md) --------------------------------------
SERVICE ?=
STACK_SERVICE = $(if $(SERVICE),--service $(SERVICE))
.PHONY: up-dev up-prod down-dev down-prod logs-dev logs-prod ps-dev ps-prod rebuild-dev up-edge reload-edge deploy-prod cutover-prod
up-dev: setup ## start EB (creates caddy_net and EB's vault folder when missing)
	$(TS) $(S)/stack.ts up --env dev $(ARGS)
up-prod: setup ## start EA
	$(TS) $(S)/stack.ts up --env prod $(ARGS)
down-dev: setup ## stop EB (volumes are kept)
	$(TS) $(S)/stack.ts down --env dev $(STACK_SERVICE) $(ARGS)
down-prod: setup ## stop EA (volumes are kept)
	$(TS) $(S)/stack.ts down --env prod $(STACK_SERVICE) $(ARGS)
logs-dev: setup ## follow EB's logs (SERVICE=api to narrow)
	$(TS) $(S)/stack.ts logs --env dev $(STACK_SERVICE) $(ARGS)
logs-prod: setup ## follow EA's logs (SERVICE=api to narrow)
	$(TS) $(S)/stack.ts logs --env prod $(STACK_SERVICE) $(ARGS)
ps-dev: setup ## EB's containers
	$(TS) $(S)/stack.ts ps --env dev $(STACK_SERVICE) $(ARGS)
ps-prod: setup ## EA's containers
	$(TS) $(S)/stack.ts ps --env prod $(STACK_SERVICE) $(ARGS)
rebuild-dev: setup ## build EB's images, then recreate only what changed (a failed build leaves EB running)
	$(TS) $(S)/stack.ts rebuild --env dev $(STACK_SERVICE) $(ARGS)
up-edge: setup ## start the shared Caddy (caddy/docker-compose.edge.yml)
	$(TS) $(S)/stack.ts up-edge $(ARGS)
reload-edge: setup ## reload the shared Caddy's configuration
	$(TS) $(S)/stack.ts reload-edge $(ARGS)
deploy-prod: setup ## deploy main (tested on EB) to EA; ARGS="--dry-run" | "--rollback" | "--skip-tests --yes"
	$(TS) $(S)/deploy-to-prod.ts $(ARGS)
cutover-prod: setup ## once: move production from the old stack to EA on the same volume; ARGS="--old-project makapix"
	$(TS) $(S)/cutover-prod.ts $(ARGS)

# The e2e tier: a real Docker engine (started here if needed), images built locally. Not part of `make test`.
test-e2e: setup-e2e ## end-to-end tests on a real Docker engine (deploy, cutover, both stacks side by side)
	$(TS) tests/e2e/harness/prepare.ts
	TEST_JOBS=1 $(TS) tests/run.ts tests/e2e

# ---- verify and monitor (docs/verify-monitor.md) -----------------------------------------
.PHONY: verify monitor
verify: setup ## smoke-test the live environments: ENV=prod|dev|all (default all); ARGS="--pre" | "--json"
	$(TS) $(S)/verify.ts --env $(or $(ENV),all) $(ARGS)

monitor: setup ## alert thresholds, Nagios exit codes (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); ARGS="--only certs" | "--json --ping URL"
	$(TS) $(S)/monitor.ts $(ARGS)
