# pyxen: the two commands of the README.
#   make demo  - install what is needed, build, boot the Xen lab and run the demo
#   make test  - install what is needed, run the host tests and the lab tests (in a real dom0)
# Both run as root on Debian 12 x86-64 (the lab builds a Debian image with debootstrap).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST_PACKAGES := qemu-system-x86 debootstrap e2fsprogs libxen-dev gcc python3-dev python3-venv
LAB_TIMEOUT ?= 3000
# The lab tests run once per supported Xen release (Debian 12's 4.17, Debian 13's 4.20).
LAB_XEN ?= 4.17 4.20
LAB_PYTEST := python3 -m pytest -v --color=no -p no:cacheprovider tests/lab

.PHONY: all deps venv build demo test test-host test-lab bench lab-shell clean

all: build

deps:
	@missing=""; for p in $(HOST_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing host packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.ok: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check cffi pytest setuptools hypothesis
	touch $@

venv: deps $(VENV)/.ok

build: venv
	$(PY) setup.py -q build_ext --inplace

demo: build
	@$(PY) -m pyxen virt-caps
	$(PY) -m pyxen.lab run --timeout $(LAB_TIMEOUT) -- pyxen demo

test: build
	@rc=0; \
	echo "== host tests =="; $(PY) -m pytest -v tests/host || rc=1; \
	for v in $(LAB_XEN); do \
	    echo "== lab tests inside a Xen $$v dom0 =="; \
	    $(PY) -m pyxen.lab --xen $$v run --timeout $(LAB_TIMEOUT) -- $(LAB_PYTEST) || rc=1; \
	done; \
	exit $$rc

test-host: build
	$(PY) -m pytest -v tests/host

test-lab: build
	@rc=0; for v in $(LAB_XEN); do \
	    $(PY) -m pyxen.lab --xen $$v run --timeout $(LAB_TIMEOUT) -- $(LAB_PYTEST) || rc=1; \
	done; exit $$rc

lab-shell: build
	$(PY) -m pyxen.lab shell

clean:
	rm -rf build $(VENV) pyxen/*.so pyxen/_xen.c pyxen/_cpuid.c
