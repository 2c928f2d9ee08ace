# Switchboard — everyday commands. `make run` and `make test` are the quick start.

CARGO ?= cargo
# Where `make test` finds the servers; .ci/run starts them when they are not running.
export SWITCHBOARD_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432
export SWITCHBOARD_TEST_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/%2f

.PHONY: run test lint fmt bench services build

## run: the whole system in one process, embedded (SQLite + in-process bus), nothing else to install,
## with the demo residents and contacts of seeds/demo.toml (stored once, however often it starts)
run:
	$(CARGO) run --release --bin switchboard -- up --demo

build:
	$(CARGO) build --workspace --all-targets

## test: every test, against real PostgreSQL and RabbitMQ (see `make services`)
# Benchmarks are compiled by lint (clippy --all-targets) but not run here:
# they print figures, they do not pass or fail.
test: lint
	$(CARGO) test --workspace --no-fail-fast

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## bench: intake and end-to-end throughput beside raw PostgreSQL and RabbitMQ in the same run
bench:
	$(CARGO) run --release --bin switchboard -- bench

## services: start local PostgreSQL and RabbitMQ if they are not running
services:
	./scripts/services.sh
