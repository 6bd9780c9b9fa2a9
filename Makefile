# pyxen: the two commands of the README.
#   make demo  - install what is needed, build, boot the Xen lab and run the demo
#   make test  - install what is needed, run the host tests and the lab tests (in a real dom0)
# Both run as root on Debian 12 x86-64 (the lab builds a Debian image with debootstrap).
# make test first proves the package: sdist + wheel, the sdist pip-installed into a fresh
# venv and run from /; then the lab tests of both Xen releases start side by side (each
# against that sdist installed in its dom0, its log in build/lab-<release>.log) while mypy,
# ruff and the host tests run; the lab logs are printed once both are done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST_PACKAGES := qemu-system-x86 debootstrap e2fsprogs libxen-dev gcc python3-dev python3-venv \
                 pkg-config
# A fresh venv each make test: the sdist installed as a user would (pip, build isolation).
INSTALL_VENV := .venv-sdist
# The sdist `make dist` made (a shell glob: make caches directory listings).
SDIST = $$(ls $(CURDIR)/dist/pyxen-*.tar.gz)
LAB_TIMEOUT ?= 4800
# The lab tests run once per supported Xen release (Debian 12's 4.17, Debian 13's 4.20).
LAB_XEN ?= 4.17 4.20
LAB_PYTEST := python3 -m pytest -v --color=no -p no:cacheprovider --durations=40
# The lab test files in the order a release runs them. make test runs the two releases side
# by side, and a TCG HVM boot slows to a crawl while the other lab boots one too: the second
# release starts at test_guest_hvm.py (then wraps round), so the two never reach the HVM
# boots together.
LAB_FILES = $$(ls tests/lab/test_*.py)
LAB_FILES_ROTATED = $$(ls tests/lab/test_*.py | awk '/test_guest_hvm.py/{f=1} f') \
                    $$(ls tests/lab/test_*.py | awk '/test_guest_hvm.py/{exit} {print}')

.PHONY: all deps venv build dist install-check static demo test test-host test-lab lab-shell clean

all: build

deps:
	@missing=""; for p in $(HOST_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing host packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The development venv: pyxen installed editable with its test extra (pytest, hypothesis,
# build, mypy, ruff, types-cffi); the extension modules are built in place.
$(VENV)/.ok: pyproject.toml Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "setuptools>=77" "cffi>=1.15"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $@

venv: deps $(VENV)/.ok

build: venv
	$(PY) setup.py -q build_ext --inplace

# sdist, then the wheel built from that sdist (python -m build's default).
dist: venv
	rm -rf dist build
	@mkdir -p dist; echo "$(PY) -m build --outdir dist . (log: dist/build.log)"; \
	$(PY) -m build --outdir dist . >dist/build.log 2>&1 || { tail -40 dist/build.log; exit 1; }; \
	tail -1 dist/build.log

# The sdist into a fresh venv, then the installed copy used from / (not this tree).
install-check: dist
	rm -rf $(INSTALL_VENV)
	$(PYTHON) -m venv $(INSTALL_VENV)
	$(INSTALL_VENV)/bin/pip install -q --disable-pip-version-check $(SDIST)
	cd / && $(CURDIR)/$(INSTALL_VENV)/bin/python -c \
	    'import pyxen, pyxen._xen, pyxen._cpuid, pyxen._linux, pyxen._ring, pyxen.cli; assert "/site-packages/" in pyxen.__file__, pyxen.__file__'
	cd / && $(CURDIR)/$(INSTALL_VENV)/bin/pyxen --version
	cd / && $(CURDIR)/$(INSTALL_VENV)/bin/pyxen virt-caps --json >/dev/null
	@cd / && $(CURDIR)/$(INSTALL_VENV)/bin/pyxen list 2>$(CURDIR)/$(INSTALL_VENV)/list.err; rc=$$?; \
	    lines=$$(wc -l <$(CURDIR)/$(INSTALL_VENV)/list.err); \
	    if [ $$rc -ne 1 ] || [ $$lines -ne 1 ]; then \
	        echo "install-check: pyxen list without Xen: exit $$rc, $$lines stderr lines (want 1, 1)"; \
	        exit 1; \
	    fi; echo "install-check: pyxen list without Xen exits 1 with one line"

static: venv
	$(VENV)/bin/mypy pyxen
	$(VENV)/bin/ruff check pyxen tests benchmarks

demo: build dist
	@$(PY) -m pyxen virt-caps
	PYXEN_LAB_SDIST=$(SDIST) $(PY) -m pyxen.lab run --timeout $(LAB_TIMEOUT) -- pyxen demo

test: build
	@rc=0; \
	echo "== package: sdist, wheel, the sdist into a fresh venv =="; \
	$(MAKE) --no-print-directory install-check || exit 1; \
	mkdir -p build; \
	n=0; for v in $(LAB_XEN); do \
	    if [ $$n = 0 ]; then files="$(LAB_FILES)"; else files="$(LAB_FILES_ROTATED)"; fi; \
	    n=$$((n + 1)); \
	    echo "== lab tests inside a Xen $$v dom0 (pyxen installed from $(SDIST)): started, log build/lab-$$v.log =="; \
	    ( PYXEN_LAB_SDIST=$(SDIST) \
	      $(PY) -m pyxen.lab --xen $$v run --timeout $(LAB_TIMEOUT) -- $(LAB_PYTEST) $$files \
	        >build/lab-$$v.log 2>&1; echo $$? >build/lab-$$v.rc; \
	      echo "== lab tests on Xen $$v finished (exit $$(cat build/lab-$$v.rc)) ==" ) & \
	done; \
	echo "== static checks: mypy, ruff =="; \
	$(MAKE) --no-print-directory static || rc=1; \
	echo "== host tests =="; PYXEN_DIST=$(CURDIR)/dist $(PY) -m pytest -v tests/host || rc=1; \
	wait; \
	for v in $(LAB_XEN); do \
	    echo "== lab tests inside a Xen $$v dom0 (pyxen installed from $(SDIST)) =="; \
	    cat build/lab-$$v.log; \
	    [ "$$(cat build/lab-$$v.rc 2>/dev/null)" = 0 ] || rc=1; \
	done; \
	exit $$rc

test-host: build
	$(PY) -m pytest -v tests/host

test-lab: build dist
	@rc=0; for v in $(LAB_XEN); do \
	    PYXEN_LAB_SDIST=$(SDIST) \
	    $(PY) -m pyxen.lab --xen $$v run --timeout $(LAB_TIMEOUT) -- $(LAB_PYTEST) tests/lab || rc=1; \
	done; exit $$rc

lab-shell: build
	$(PY) -m pyxen.lab shell

clean:
	rm -rf build dist $(VENV) $(INSTALL_VENV) pyxen/*.so pyxen/_xen.c pyxen/_cpuid.c pyxen/_linux.c pyxen/_ring.c *.egg-info
