# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
# On Raspberry Pi OS: make VENV_FLAGS=--system-site-packages (to see python3-picamera2)
VENV_FLAGS ?=
VENV := .venv
BIN := $(VENV)/bin
APPLIANCE := $(BIN)/appliance
STAMP := $(VENV)/.installed

.PHONY: venv models broker demo test bench hw-test deb clean

$(STAMP): setup.cfg pyproject.toml tools/pyproject.toml
	$(PY) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./tools
	touch $(STAMP)

venv: $(STAMP)

models: $(STAMP)
	$(APPLIANCE) models fetch

# The demo's van broker is a local mosquitto (Debian package); installed here when root.
broker:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; } || \
	  echo "note: mosquitto not installed (sudo apt-get install mosquitto); the demo will print alerts only"

# The demo also runs the officers' console (URL and a demo sign-in printed); keep it up to look
# at it with e.g. `make demo DEMO_HOLD=600` (seconds, after the clip).
DEMO_HOLD ?= 0

demo: models broker
	$(APPLIANCE) demo --console --hold $(DEMO_HOLD)

test: models
	$(BIN)/python -m pytest -q

bench: models
	$(APPLIANCE) bench --out bench-results

# On the unit (commissioning): the real NPU and camera against the CPU backends, JSON report.
HW_CONFIG ?= /etc/appliance/appliance.toml
hw-test: models
	$(BIN)/python hw/hwtest.py --config $(HW_CONFIG) --out hw-results/hw-test.json

# The unit's Debian package: dist/lfr-appliance_<version>_<arch>.deb (docs/technician.md).
# DEB_ARCH=arm64 builds the Raspberry Pi OS package on any machine (wheels for that arch).
DEB_ARCH ?=
deb: models
	$(BIN)/python -m lfr_tools.package.deb $(if $(DEB_ARCH),--arch $(DEB_ARCH))

clean:
	rm -rf $(VENV) models/cache bench-results hw-results var out dist
