# The two commands a newcomer needs: `make demo` and `make test`. Each sets everything up from nothing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_SCENE := data/demo/virginia_s2_crop.tif
DEMO_OUT := demo-output

.PHONY: demo test lint typecheck unit install clean benchmark

install: $(STAMP)

# pip (not uv/poetry) so torch comes from the machine's local wheel cache; versions pinned by constraints.txt
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	mkdir -p $(DEMO_OUT)
	$(VENV)/bin/geoseg predict $(DEMO_SCENE) --out $(DEMO_OUT)/landcover.gpkg \
		--raster $(DEMO_OUT)/landcover.tif --overwrite
	@echo "demo: wrote $(DEMO_OUT)/landcover.gpkg and $(DEMO_OUT)/landcover.tif"

lint: $(STAMP)
	$(VENV)/bin/ruff check geoseg tests benchmarks scripts
	$(VENV)/bin/ruff format --check geoseg tests benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis
