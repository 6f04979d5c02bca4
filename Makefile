# Two commands do all set-up: `make run` (the seed_claims study and its verdict report) and `make test` (the tests).
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test

$(BIN)/crossprune: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	@echo "Installing crossprune and its dependencies into $(VENV) (first time: about 4 minutes; see README)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

run: $(BIN)/crossprune
	$(BIN)/crossprune -m study=seed_claims trainer.progress_bar=false
	$(BIN)/crossprune-report study=seed_claims

test: $(BIN)/crossprune
	$(BIN)/python -m pytest
