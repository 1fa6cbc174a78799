# The two commands: `make demo` and `make test` (and `make bench`: every bench, needs root). Both install what is missing and are idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := iproute2 nftables etcd-server etcd-client dnsutils dnsperf dnsmasq-base \
	containernetworking-plugins iperf3 conntrack ulogd2 ulogd2-json curl procps iputils-ping util-linux python3-venv \
	bird2 chromium chromium-driver

.PHONY: demo test bench deps apt venv clean

demo: deps
	$(VENV)/bin/podnet demo

test: deps
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

# every bench at its default sizes, one after the other (bench/run_all.py; sizes per bench:
# make bench BENCH_ARGS='--with services="--services 50000" --only services')
bench: deps
	$(PY) bench/run_all.py $(BENCH_ARGS)

deps: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e '.[test]'
	@touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info
