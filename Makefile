# One entry point for people and CI. Every target prepares the machine first
# (system packages, virtual environments, a running Docker engine).
SHELL := /bin/bash

.PHONY: bootstrap demo demo-down test test-full lint unit

bootstrap:
	scripts/bootstrap.sh

demo: bootstrap  ## bring up the local demo cluster and run site.yml against it
	scripts/demo.sh up

demo-down:  ## remove the local demo cluster
	scripts/demo.sh down

test: bootstrap  ## lint, unit tests and every molecule scenario (the CI profile, about an hour)
	scripts/test.sh

test-full: bootstrap  ## as test, plus the long phases (NFS reboot test; cluster: failed rollout, scale, fleet phases, unreachable LB)
	QVC_TEST_PROFILE=full scripts/test.sh

lint: bootstrap
	QVC_SKIP_MOLECULE=1 scripts/test.sh

unit: lint
