# Entry points for working on the pipeline. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Ports of the local stack's PostgreSQL and RDS Data API. No AWS credentials are set here:
# the scripts that talk only to the local stack set test credentials themselves, and
# `make migrate` against a deployed stack uses yours.
export PIPELINE_PG_PORT ?= 54329
export PIPELINE_DATA_API_PORT ?= 8089

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: local-up
local-up: ## Start LocalStack, PostgreSQL and the local Data API (each only if not running)
	scripts/local-stack.sh up

.PHONY: local-down
local-down: ## Stop what local-up started
	scripts/local-stack.sh down

.PHONY: test
test: ## Run every test: unit tests, then integration tests against the local stack
	scripts/test.sh

.PHONY: demo
demo: ## Run the whole pipeline locally on real data and print a report
	scripts/demo.sh

.PHONY: bench
bench: ## Run the benchmarks (release build) and print their figures
	scripts/bench.sh

.PHONY: lint
lint: ## Check the SAM template with sam validate --lint, cfn-lint and checkov
	scripts/lint.sh

.PHONY: build
build: ## Build the three functions for arm64 with sam build
	scripts/sam.sh build

.PHONY: migrate
migrate: ## Apply the SQL migrations through the Data API (local stack unless DB_CLUSTER_ARN is set)
	scripts/migrate.sh

.PHONY: watch
watch: ## Run the functions under cargo lambda watch, pointed at the local stack
	scripts/watch.sh

.PHONY: invoke
invoke: ## Invoke a function under watch: make invoke FUNCTION=<name> EVENT=<file>
	scripts/invoke.sh "$(FUNCTION)" "$(EVENT)"
