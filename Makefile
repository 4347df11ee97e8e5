# Two commands: `make run` (set up, index, chat) and `make test` (set up, lint, audit, test).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install dev index run test quick lint audit format bench screenshot clean

$(BIN)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(BIN)/.dev-installed: $(BIN)/.installed requirements-dev.txt requirements-ray.txt
	$(BIN)/pip install -q -r requirements-dev.txt -r requirements-ray.txt
	touch $@

install: $(BIN)/.installed

dev: $(BIN)/.dev-installed

index: install
	$(BIN)/chatbot index build

run: index
	$(BIN)/chatbot chat

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

audit: dev
	$(BIN)/python tools/audit.py requirements.txt requirements-dev.txt requirements-ray.txt

test: lint audit
	$(BIN)/pytest

quick: dev  # the fast tests only (no slow system tests, real model or browser): under a minute
	$(BIN)/pytest -q -m "not slow and not model and not browser"

bench: dev
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/k2.py
	$(BIN)/python bench/latency.py

screenshot: dev
	CHATBOT_UPDATE_DOCS=1 $(BIN)/pytest -q tests/test_browser.py

clean:
	rm -rf $(VENV) index/gen-* index/manifest.json tests/artifacts
