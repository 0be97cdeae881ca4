# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 5000
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT    := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get

export PORT

.PHONY: run test bench bench-node-tools bench-storm install install-test requirements tools redis-server node-tools browser nginx clean

run: install
	@echo "realtime: serving the embedded default (no Redis) on http://127.0.0.1:$(PORT)/"
	@echo "  demo page:  http://127.0.0.1:$(PORT)/"
	@echo "  catalogue:  http://127.0.0.1:$(PORT)/ws-docs   (AsyncAPI: /ws-docs/spec, TypeScript: /ws-docs/types.ts)"
	@echo "  health:     http://127.0.0.1:$(PORT)/healthz   readiness: http://127.0.0.1:$(PORT)/readyz"
	@echo "  dev tokens: $(VENV)/bin/flask --app wsgi token create alice"
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: install-test tools
	$(PY) -m pytest

# Run by hand (figures, not pass/fail): see bench/README.md. `make bench` compares realtime with a reference
# Node Socket.IO server (scenario a, 1 worker); BENCH_ARGS picks another, e.g. "--scenario d --clients 2000".
BENCH_ARGS ?= --scenario a --repeat 1
bench: install-test redis-server bench-node-tools
	$(PY) bench/side_by_side.py $(BENCH_ARGS)

bench-node-tools: bench/node/node_modules/.package-lock.json
bench/node/node_modules/.package-lock.json: bench/node/package.json bench/node/package-lock.json
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error

STORM_ARGS ?= --sockets 2000
bench-storm: install-test redis-server node-tools
	$(PY) bench/reconnect_storm.py $(STORM_ARGS)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(VENV)/.installed
$(VENV)/.installed: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

install-test: $(VENV)/.installed-test
$(VENV)/.installed-test: setup.cfg pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

# requirements.txt is what Heroku's Python buildpack installs: setup.cfg's install_requires and everything they
# pull in, pinned with ==, resolved by uv (test extra) for the Python in .python-version on Linux (a dyno).
# Run it after every change to install_requires; tests/test_requirements.py fails until then.
requirements: install-test
	$(VENV)/bin/uv pip compile setup.cfg --quiet --python-version $$(cat .python-version) --python-platform linux \
		--custom-compile-command "make requirements" -o requirements.txt

tools: redis-server node-tools browser nginx

redis-server:
	@command -v redis-server >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq redis-server; }

# The deployment chapter's nginx example runs in tests/e2e/test_deployment.py.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { $(APT) update -qq && $(APT) install -y -qq nginx; }

browser:
	@command -v chromium >/dev/null 2>&1 || { $(APT) update -qq && $(APT) install -y -qq chromium chromium-driver; }

node-tools: tests/node/node_modules/.package-lock.json
tests/node/node_modules/.package-lock.json: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) tests/node/node_modules bench/node/node_modules .pytest_cache
