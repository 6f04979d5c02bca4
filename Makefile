# Two commands do all set-up: `make run` (default experiment) and `make test` (the test suite).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test

$(BIN)/crossprune: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

run: $(BIN)/crossprune
	$(BIN)/crossprune

test: $(BIN)/crossprune
	$(BIN)/python -m pytest
