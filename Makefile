# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
# On Raspberry Pi OS: make VENV_FLAGS=--system-site-packages (to see python3-picamera2)
VENV_FLAGS ?=
VENV := .venv
BIN := $(VENV)/bin
APPLIANCE := $(BIN)/appliance
STAMP := $(VENV)/.installed

.PHONY: venv models demo test bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

models: $(STAMP)
	$(APPLIANCE) models fetch

demo: models
	$(APPLIANCE) demo

test: models
	$(BIN)/python -m pytest -q

bench: models
	$(APPLIANCE) bench --out bench-results

clean:
	rm -rf $(VENV) models/cache bench-results var out
