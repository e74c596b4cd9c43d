# The README promises two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-quick clean compile clean-compiled test-compiled

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tradehall demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run_all.py --quick

# The optional native build (docs/engine.md, "Compiled build"): mypyc, which ships inside the mypy
# package, compiles the engine and domain in place (*.so next to the sources, build dir in src/build).
# Modules that define msgspec Structs stay interpreted: mypyc drops the class keywords
# (frozen, kw_only, gc, tag) of non-native classes, which changes what the Structs are.
COMPILED_SKIP := tradehall/domain/(commands|events|market|tiers)\.py|tradehall/engine/(config|order_record)\.py
COMPILED_TESTS := $(wildcard tests/unit/test_engine_*.py) tests/property
# It replaces a bound method on an engine component to spy on it: native classes refuse that.
COMPILED_DESELECT := tests/unit/test_engine_reasons.py::test_every_order_ending_unfilled_carries_its_reason

compile: $(STAMP)
	cd src && $(abspath $(BIN))/mypyc $$(ls tradehall/engine/*.py tradehall/domain/*.py | grep -v -E '$(COMPILED_SKIP)')

clean-compiled:
	rm -rf src/build src/.mypy_cache
	find src -name '*.so' -delete

# Compile, run the engine tests and the compiled-vs-interpreted differential test on the native build,
# then remove it again (whatever the outcome) so the tree stays interpreted.
test-compiled: $(STAMP)
	$(MAKE) compile
	$(BIN)/pytest -p no:cacheprovider $(COMPILED_TESTS) --deselect $(COMPILED_DESELECT); status=$$?; $(MAKE) clean-compiled; exit $$status

clean: clean-compiled
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
