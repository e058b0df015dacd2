PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install test lint run check-examples clean

HOST ?= 127.0.0.1
PORT ?= 8000

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(STAMP)

install: $(STAMP)

# the test extras add pyspark (Java 17 runs it) on top of what `make run` needs
$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[test,spark]'
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
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
