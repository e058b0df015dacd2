PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint run check-examples clean

HOST ?= 127.0.0.1
PORT ?= 8000

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

run: $(STAMP)
	-$(BIN)/medpay validate
	$(BIN)/medpay serve --host $(HOST) --port $(PORT)

check-examples: $(STAMP)
	../shared/tools/check-worked-examples $(BIN)/medpay

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
