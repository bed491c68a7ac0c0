# `make run` starts the whole backend on embedded defaults; `make test` runs the suite.
# Both set everything up first: a locked virtualenv (uv) and FFmpeg when it is missing.

VENV      := .venv
TOOLS     := .tools
UV        := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
PYTEST_ARGS ?=
# The dependency audit: AUDIT=skip on an offline machine; AUDIT=require where the
# vulnerability service must answer (an audit that could not run then fails the build);
# AUDIT_SERVICE=pypi|osv; AUDIT_IGNORE="--ignore-vuln ID ..." for an accepted, written-down
# exception.
AUDIT ?= run
AUDIT_SERVICE ?= pypi
AUDIT_IGNORE ?=

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: setup run test audit lint bench fuzz ffmpeg clean

setup: $(VENV)/.synced ffmpeg

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra render
	touch $@

ffmpeg:
	@if command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg >/dev/null; \
	else \
	  echo "FFmpeg is missing: install ffmpeg and ffprobe (brew install ffmpeg, dnf install ffmpeg)," \
	       "or point FARM_FFMPEG and FARM_FFPROBE at them." >&2; exit 1; \
	fi

run: setup
	$(VENV)/bin/farm up

test: setup audit lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Known vulnerabilities with a fixed release in any locked package (every extra and group)
# fail the build. An audit that could not really run (no service, or an index mirror that
# knows no package's vulnerabilities) says so loudly and, unless AUDIT=require, lets the
# tests go on: a network limit is not a verdict on the lock.
audit: $(VENV)/.synced
ifeq ($(AUDIT),skip)
	@echo "audit: skipped (AUDIT=skip)"
else
	$(UV) export --quiet --frozen --all-extras --all-groups --no-hashes --no-emit-project \
	  > $(VENV)/requirements.lock.txt
	@rm -f $(VENV)/audit.json
	-@$(VENV)/bin/pip-audit --no-deps --disable-pip --progress-spinner off --timeout 30 \
	  --vulnerability-service $(AUDIT_SERVICE) $(AUDIT_IGNORE) --format json \
	  --output $(VENV)/audit.json -r $(VENV)/requirements.lock.txt > $(VENV)/audit.log 2>&1
	@$(VENV)/bin/python ops/audit_lock.py $(VENV)/audit.json $(VENV)/audit.log; code=$$?; \
	if [ $$code = 2 ] && [ "$(AUDIT)" != require ]; then \
	  echo "audit: NOT PERFORMED (the reason is above); the tests go on. AUDIT=require makes this fatal." >&2; \
	else exit $$code; fi
endif

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy pipelines

# Every benchmark once, each beside its baseline (under 15 min on 2 cores); writes
# docs/performance.md. BENCH_ARGS="--only api dispatch" runs a few; see bench/all.py.
bench: setup
	$(VENV)/bin/python -m bench.all $(BENCH_ARGS)

# The API fuzzed against its own OpenAPI document at length (`make test` runs it short):
# FARM_FUZZ_EXAMPLES cases per operation and phase, a new seed each run (printed; rerun one
# with FARM_FUZZ_SEED=N), failing past FARM_FUZZ_TIMEOUT_S. See tests/fuzz/test_openapi.py.
fuzz: setup
	FARM_FUZZ_EXAMPLES=$${FARM_FUZZ_EXAMPLES:-100} FARM_FUZZ_SEED=$${FARM_FUZZ_SEED:-random} \
	FARM_FUZZ_TIMEOUT_S=$${FARM_FUZZ_TIMEOUT_S:-3000} \
	  $(VENV)/bin/python -m pytest tests/fuzz -p no:cacheprovider -s $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
