# `make run` starts the whole backend on embedded defaults; `make test` runs the suite.
# Both set everything up first: a locked virtualenv (uv) and FFmpeg when it is missing.

VENV      := .venv
TOOLS     := .tools
UV        := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: setup run test lint bench ffmpeg clean

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

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy pipelines

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache
