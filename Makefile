# gridrider — the two commands: `make up` (run everything) and `make test` (run every test).
# Only Python 3.11+ and access to PyPI are needed; everything else is installed into .venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Tests use DATABASE_URL / REDIS_URL when set, else embedded servers; -n spreads them over the cores.
PYTEST_ARGS ?= -n 2 --dist loadgroup

.PHONY: up test soak install install-test chromium lint lock bench clean

up: install
	$(BIN)/gridrider up --demo

# The fault suite (tests/faults) runs after the rest, alone: it puts a whole deployment under 20 reports/s on
# this machine's cores, and shared with the rest of the suite it measured the other tests, not the faults.
test: install-test
	$(BIN)/ruff check backend tests
	$(BIN)/pytest $(PYTEST_ARGS) -m "not faults"
	$(BIN)/pytest -p no:cacheprovider -m faults -rA tests/faults

# Ten minutes of mixed faults under load (tests/faults/test_soak.py); `make test` runs the bounded version.
soak: install-test
	GRIDRIDER_SOAK_S=$(or $(SOAK_SECONDS),600) $(BIN)/pytest -p no:cacheprovider -s tests/faults/test_soak.py

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Locked, hash-checked dependencies; the project itself editable (no build step to rerun).
$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: requirements-test.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-test.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.installed

# The browser tests (tests/pwa) drive Debian's chromium — never `playwright install`, which downloads
# its own builds — plus a CJK and an emoji font so the screenshots show the app's text. Installed here
# when we are root with apt-get; otherwise say so once: tests/pwa then FAILS (it never skips) with the
# same advice, so a CI without a browser cannot pass by not testing the app.
CHROMIUM_PACKAGES := chromium fonts-wqy-microhei fonts-noto-color-emoji
chromium:
	@{ command -v chromium >/dev/null 2>&1 && { ! command -v dpkg >/dev/null 2>&1 || dpkg -s $(CHROMIUM_PACKAGES) >/dev/null 2>&1; }; } \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CHROMIUM_PACKAGES); } \
	  || echo "make: chromium is missing and cannot be installed here (needs root and apt-get): apt-get install $(CHROMIUM_PACKAGES)"

lint: install-test
	$(BIN)/ruff check backend tests

# Re-resolve the lock files after changing dependencies in pyproject.toml.
lock: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock -q
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements-test.lock -q

# Benchmarks print figures; they are not part of `make test`. make bench NAME=jobs
bench: install
	$(BIN)/gridrider bench $(or $(NAME),list)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
