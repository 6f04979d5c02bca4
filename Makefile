# Two commands do all set-up: `make run` (the seed_claims study and its verdict report) and `make test` (the tests).
VENV := .venv
BIN := $(VENV)/bin
DATA := $(VENV)/.data-ready

.PHONY: run test data

$(BIN)/crossprune: pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	@echo "Installing crossprune and its dependencies into $(VENV) (first time: about 4 minutes; see README)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# The data that is not embedded, from Debian's packages (as root: apt-get install; else apt-get download + dpkg -x
# into ~/.cache/crossprune): Fashion-MNIST's four IDX files, and lm_code_prose's B corpus (dict-devil: The Devil's
# Dictionary). Each is tried even when the other fails. Nothing is downloaded while an experiment runs.
$(DATA): $(BIN)/crossprune $(wildcard src/crossprune/data/*_setup.py)
	$(BIN)/python -m crossprune.data.fashion_setup; fashion=$$?; $(BIN)/python -m crossprune.data.text_setup && exit $$fashion
	touch $@

data: $(DATA)

# The study's jobs side by side, one per core (at most 8): each job's torch keeps to compute.threads (1), so the
# numbers are the same as one job at a time. `make run JOBS=1` runs them one by one.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 8 ? n : 8 )))

run: $(BIN)/crossprune $(DATA)
	$(BIN)/crossprune -m study=seed_claims trainer.progress_bar=false hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS)
	$(BIN)/crossprune-report study=seed_claims

# Tests on the real files run where they are installed and are skipped, with the reason, where they are not.
test: $(BIN)/crossprune
	-$(MAKE) --no-print-directory data
	$(BIN)/python -m pytest
