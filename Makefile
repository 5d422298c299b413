# The two commands of the README. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint packages

$(BIN)/exchange: pyproject.toml exchange/avro/_native.c
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(BIN)/exchange

demo: $(BIN)/exchange
	$(BIN)/exchange demo

lint: $(BIN)/exchange
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The Debian packages whose servers the suite starts for itself (PostgreSQL, MariaDB):
# installed here when missing and run as root, else one sentence says what to install.
packages:
	@bash tests/services/require-packages.sh

# Two lanes, side by side (tests/run-lanes.sh): every test on the embedded broker (one per
# module), and the integration tests again on a 3-node Apache Kafka cluster with SASL users
# and ACLs (tests/integration/conftest.py). Each lane prints its own time.
test: packages lint
	@BIN=$(BIN) bash tests/run-lanes.sh
