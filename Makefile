# Flash sale: the front door. `make` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
CARGO ?= cargo

N ?= 3
M ?= 2
# make chaos
SECONDS ?= 600
RATE ?= 800
SEED ?= 1

# make run AUTH=jwt: the sale behind sign-in (see README "Buyers and sign-in").
AUTH ?= none
.PHONY: help run run-cluster run-ha validate-deploy build build-loadtest test test-rust test-frontend test-scripts test-unit lint fmt migrate bench bench-ab bench-acks failover profile instructions bench-aof chaos loadtest loadtest-burst loadtest-dedup loadtest-sustained loadtest-soldout services-up services-down clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: build ## Start Redis + PostgreSQL (reused or private), the worker and the api with a demo sale active now (AUTH=jwt: behind sign-in, with the development identity provider)
	@AUTH=$(AUTH) deploy/local/run.sh

run-cluster: build ## N api replicas + M workers behind haproxy on :8080 (make run-cluster N=3 M=2)
	@N=$(N) M=$(M) deploy/local/cluster.sh

run-ha: build ## run-cluster on a Redis primary + 2 replicas + 3 sentinels on loopback (REDIS_MIN_REPLICA_ACKS=1)
	@N=$(N) M=$(M) deploy/local/ha.sh

build: ## Build the release binaries (api, order-worker, dev-idp)
	$(CARGO) build --release --bins

test: test-rust test-frontend test-scripts ## Run every test: Rust (real Redis + PostgreSQL, started if needed), the storefront (Vitest + Chromium), the scripts

test-rust: ## The Rust unit, integration and fault-injection tests (cargo-nextest: a process per test)
	@deploy/local/ensure-tools.sh redis-server:redis-server redis-cli:redis-tools haproxy:haproxy
	@# Each test runs in a process of its own: the tests read process-wide
	@# metrics, which one shared process (plain cargo test) would mix up.
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "installing cargo-nextest (once)"; $(CARGO) install cargo-nextest --locked; }
	@deploy/local/services.sh up
	@. .run/services.env && deploy/local/services.sh clean-test-data
	@. .run/services.env && \
	  export TEST_REDIS_URL="redis://$$REDIS_HOST:$$REDIS_PORT" TEST_DATABASE_URL="$$DATABASE_URL" && \
	  $(CARGO) nextest run --workspace --no-fail-fast; status=$$?; \
	  deploy/local/services.sh clean-test-data; exit $$status

test-frontend: ## The storefront: Vitest units, build, Playwright in Debian's Chromium against the real stack
	@deploy/local/frontend-test.sh

test-scripts: ## The scripts' own tests (loadtest/tests/*.sh): make loadtest fails when a scenario fails
	@for t in loadtest/tests/*.sh; do bash "$$t" || exit 1; done

test-unit: ## Unit tests only (no services needed)
	$(CARGO) test --workspace --lib --bins

lint: ## rustfmt check, clippy -D warnings, domain free of actix/diesel, dashboards use real metrics, README figures = docs/
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@for dep in actix-web diesel; do \
	  if $(CARGO) tree -p domain -e normal -i $$dep >/dev/null 2>&1; then \
	    echo "domain must not depend on $$dep"; exit 1; fi; done; echo "domain is free of actix-web and diesel"
	@for m in $$(grep -oh 'flash_sale_[a-z_]*' deploy/grafana/*.json deploy/prometheus/*.yml | sed -E 's/_(bucket|count|sum)$$//' | sort -u); do \
	  grep -qs "\"$$m\"" crates/*/src/metrics.rs || { echo "dashboard or alert uses unknown metric $$m"; exit 1; }; done; \
	  echo "dashboard and alerts use only metrics the code emits"
	@deploy/local/readme-figures.sh --check

fmt: ## Format the code
	$(CARGO) fmt --all

migrate: ## Apply the database migrations alone (order-worker migrate)
	$(CARGO) run --release --bin order-worker -- migrate

validate-deploy: ## Validate docker-compose.yml (docker-compose config) and deploy/k8s (kubernetes-validate --strict)
	@command -v docker-compose >/dev/null || { echo "docker-compose is missing: apt-get install docker-compose"; exit 1; }
	@command -v kubernetes-validate >/dev/null || { echo "kubernetes-validate is missing: pip install kubernetes-validate"; exit 1; }
	docker-compose config -q && docker-compose --profile stack config -q && echo "docker-compose.yml is valid"
	kubernetes-validate --strict -k 1.33.0 deploy/k8s/config.yaml deploy/k8s/secret.yaml deploy/k8s/api.yaml deploy/k8s/worker.yaml

build-loadtest: ## Build the release binaries and the load generator (loadtest/)
	$(CARGO) build --release -p api -p order-worker -p loadtest

bench: build-loadtest ## Throughput vs a plaintext baseline, p50/p99, orders persisted/s, Redis CPU per purchase, api RSS (wrk); then bench-acks
	@deploy/local/ensure-tools.sh wrk:wrk redis-cli:redis-tools
	@loadtest/bench.sh
	@# Replica acknowledgements need a replica: a private primary + replica.
	@loadtest/acks.sh

bench-ab: build-loadtest ## Purchases, a lone buyer, a sold-out sale and the status, this build beside AB_BEFORE_BIN_DIR's, in one run -> docs/bench/ab.md
	@deploy/local/ensure-tools.sh wrk:wrk redis-cli:redis-tools
	@loadtest/ab.sh

bench-acks: build-loadtest ## What REDIS_MIN_REPLICA_ACKS=1 costs purchases (private primary + replica) -> docs/bench/acks.md
	@deploy/local/ensure-tools.sh wrk:wrk redis-server:redis-server redis-cli:redis-tools
	@loadtest/acks.sh

failover: ## Redis primary killed mid-sale behind Sentinel and in a Cluster (real servers on loopback) -> docs/failover/latest.md
	@deploy/local/ensure-tools.sh redis-server:redis-server redis-cli:redis-tools
	@loadtest/failover.sh

profile: build-loadtest ## perf profile of an api under purchase load -> docs/profile/purchase.txt
	@deploy/local/ensure-tools.sh wrk:wrk perf:linux-perf
	@loadtest/profile.sh

instructions: build-loadtest ## The api's instructions per request by endpoint (callgrind; machine noise free) -> docs/profile/instructions.md
	@deploy/local/ensure-tools.sh wrk:wrk valgrind:valgrind redis-cli:redis-tools
	@loadtest/instructions.sh

loadtest: build-loadtest ## Every load scenario: burst, dedup, sustained, soldout (results in loadtest/results/)
	@loadtest/run.sh all

loadtest-burst: build-loadtest ## 1,000 purchases by 200 concurrent users on stock 100: exactly 100 x 201, 100 rows
	@loadtest/run.sh burst

loadtest-dedup: build-loadtest ## 100 simultaneous purchases by one user: exactly one 201 (per-user limit off, then on)
	@loadtest/run.sh dedup

loadtest-sustained: build-loadtest ## 500 req/s for 60 s (70% status, 30% purchases), latency corrected for coordinated omission
	@loadtest/run.sh sustained

loadtest-soldout: build-loadtest ## 20,000 purchases after the stock is gone: all 410, rows stay the stock
	@loadtest/run.sh soldout

chaos: build-loadtest ## Faults every few seconds under steady purchases through the balancer, then the invariants (make chaos SECONDS=600 RATE=800 SEED=1)
	@deploy/local/ensure-tools.sh redis-server:redis-server redis-cli:redis-tools haproxy:haproxy
	@CHAOS_SECONDS=$(SECONDS) RATE=$(RATE) SEED=$(SEED) deploy/local/chaos.sh

bench-aof: build-loadtest ## Measure what Redis's appendfsync policy costs the purchase script (private Redis)
	@loadtest/aof-fsync.sh

services-up: ## Make Redis and PostgreSQL reachable (reuse, start private ones, or docker compose)
	@deploy/local/services.sh up

services-down: ## Stop the private Redis and PostgreSQL started under .run/
	@deploy/local/services.sh down

clean: ## Remove build output and private service data
	$(CARGO) clean
	rm -rf .run
