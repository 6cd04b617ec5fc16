# switchboard: `make run` starts the server on its embedded default; `make test` runs every test.

CARGO ?= cargo
RUN_ARGS ?=
# `make loadtest SCRIPT=api`: which k6 script in loadtest/ to run (TARGET_URL=... to use a running server).
SCRIPT ?= twilio_calls

.PHONY: run test build deps-run deps-test bench loadtest check fmt

run: deps-run
	$(CARGO) build --release --bin switchboard
	SWITCHBOARD_AUTH__DEMO_SEED=true "$${CARGO_TARGET_DIR:-target}/release/switchboard" serve $(RUN_ARGS)

test: deps-test
	tests/tools/with-postgres.sh $(CARGO) test --workspace
	$(CARGO) build --bin switchboard && node tests/browser/softphone.test.mjs && node tests/browser/console.test.mjs
	loadtest/run.sh --smoke twilio_calls

build: deps-run
	$(CARGO) build --release

deps-run:
	@tests/tools/deps.sh run

deps-test:
	@tests/tools/deps.sh test

bench: deps-run
	$(CARGO) bench -p media
	loadtest/capacity.sh

loadtest: deps-test
	loadtest/run.sh $(SCRIPT)

check:
	$(CARGO) clippy --workspace -- -D warnings
