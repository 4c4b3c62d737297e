# voicepay: `make run` brings up the whole stack, `make test` runs the whole suite.
# Both do every set-up step first (Debian packages, virtualenv, Asterisk rootfs, keys, prompts);
# each step is skipped when it is already done, so a second run starts in seconds.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# What the stack needs from Debian: Redis, SIPp, Asterisk's sandbox and provisioning, the SIP
# edge (Kamailio), prompt synthesis, packet captures for the DTMF checks, Python's venv module, and
# the headless browser (with CJK fonts) the agent console's tests drive through Playwright.
APT_PACKAGES := redis-server sip-tester bubblewrap mmdebstrap espeak-ng sox tshark kamailio \
                baresip linphone-cli \
                python3 python3-venv ca-certificates procps iproute2 \
                chromium fonts-noto-cjk

.PHONY: run test unit bench bench-load docs sounds deps venv asterisk prepare clean

run: deps venv
	$(PY) -m devstack.stack run

# The suite runs in parallel shards, each with its own stack in its own network namespace
# (tests/suite.py). Its whole output is kept and then checked for test card data (and for the
# PIN blocks every shard sent to the acquirer) like every other log: also, and above all, when a
# test failed, since failure reports print the most. Either failing fails `make test`.
test: deps venv
	$(PY) -m devstack.stack prepare
	mkdir -p var/log
	set -o pipefail; status=0; \
	$(PY) -m tests.suite $(PYTEST_ARGS) 2>&1 | tee var/log/test-output.log || status=$$?; \
	$(PY) -m tests.leakcheck $$(for c in var/shards/*/capture/links.pcapng; do echo --capture $$c; done) \
	  var/log/test-output.log || status=1; \
	exit $$status

unit: venv
	$(PY) -m pytest -p no:cacheprovider tests/unit

bench: deps venv
	$(PY) -m devstack.stack prepare
	$(PY) -m bench

# Payment calls per second against a dialplan-only baseline (bench/load/), then the merchant
# API's orders and reads per second and the callback dialer's originates per second: starts the
# whole stack on its fixed ports, so run it alone. BENCH_LOAD_ARGS="--rates 6,8,10 --max-payment-calls 3000 --admit-cpu-busy 100"
# (or "--api-only").
bench-load: deps venv
	$(PY) -m devstack.stack prepare
	$(PY) -m bench.load $(BENCH_LOAD_ARGS)

# The README's configuration table, from the settings (tests/unit/test_readme.py checks it).
docs: venv
	$(PY) -m devstack.config_table --write

# Every prompt in every language (WAV, .ulaw, .alaw) from sounds/manifest.toml; recordings put in
# place of a WAV are kept (ivr/prompts.py). `make run` and `make test` do this too.
sounds: deps venv
	$(PY) -m ivr.prompts build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

asterisk: deps venv
	$(PY) -m devstack.asterisk_sandbox provision

# Generated prompts go; recordings that replaced them stay.
clean:
	-test -x $(PY) && $(PY) -m ivr.prompts clean
	rm -rf var $(VENV)
