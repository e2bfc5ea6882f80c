.PHONY: build build-worker run run-worker test script-tests chdb-check dev bench bench-reports soak lint fmt clean compose-check screenshots

# Release binaries in target/release/.
build:
	cargo build --release --bin server

build-worker:
	cargo build --release --bin worker

# Run against the services named in .env / the environment.
run:
	cargo run --bin server

run-worker:
	cargo run --bin worker

# Everything: fmt, clippy, compose files, the scripts' tests, and the whole
# test suite against throwaway Postgres, Redis and ClickHouse (installed when
# missing). The suite includes the current-ClickHouse check: pulse-store's
# `every_clickhouse_statement_answers_alike...` test runs
# scripts/chdb-check.py, which installs chdb-core from PyPI when missing;
# and the dashboard's browser test (crates/server/tests/browser.rs), whose
# chromium and playwright scripts/browser-deps.sh installs when missing.
test: lint compose-check script-tests
	cargo build --bins
	scripts/browser-deps.sh
	scripts/with-services.sh cargo test --workspace --all-targets

# The end-to-end benchmark (release build); `target/release/bench --help` lists
# the flags, e.g. make bench BENCH_ARGS="--checks 12000 --interval 10".
BENCH_ARGS ?= --checks 12000 --interval 10 --duration 60 --warmup 10 --explain
bench:
	cargo build --release --bins
	./target/release/bench $(BENCH_ARGS)

# The reports benchmark (release build): generated runs loaded straight into
# ClickHouse, then each report endpoint timed through the API; `bench reports
# --help` lists the flags, e.g.
# make bench-reports REPORTS_ARGS="--runs 10000000".
REPORTS_ARGS ?= --runs 100000000 --checks 10000 --days 30
bench-reports:
	cargo build --release --bins
	./target/release/bench reports $(REPORTS_ARGS)

# The worker-kill fault test, longer: 200 SIGKILLs (about 3 minutes).
soak:
	cargo build --bins
	PULSE_FAULT_KILLS=200 scripts/with-services.sh cargo test -p pulse-worker --test faults repeated_sigkills -- --nocapture

# Server + one worker, with throwaway services unless .env names real ones.
dev:
	scripts/dev.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

# The scripts' own tests (scripts/tests/*.sh), a few seconds.
script-tests:
	@for t in scripts/tests/*.sh; do echo "== $$t"; bash "$$t" || exit 1; done

# The dashboard's browser flow alone (headless chromium, a few seconds once
# built): every step's screenshot at desktop and phone widths in
# target/screenshots/. Part of `make test` too.
screenshots:
	scripts/browser-deps.sh
	scripts/with-services.sh cargo test -p pulse-server --test browser -- --nocapture

# Only the current-ClickHouse check (chdb-core against ClickHouse 18.16).
chdb-check:
	scripts/with-services.sh cargo test -p pulse-store --test results every_clickhouse_statement -- --nocapture

# Validates both compose files without a Docker engine.
compose-check:
	scripts/compose-check.sh

clean:
	cargo clean
