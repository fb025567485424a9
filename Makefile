# Two entry points for a fresh machine: `make demo` and `make test`. Everything else is a step
# of those two, runnable alone. Needs only Python 3.11, Go >= 1.26 and a JDK 17 on the machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       := .venv
VPY        := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
# The lab's IAM policy evaluator (lab/iam, Node): installed exactly as package-lock.json pins it.
IAM_STAMP  := lab/iam/node_modules/.installed
LABCTL     := $(VPY) -m lab.labctl
# ansible-rulebook runs Drools through jpy: it needs a JDK 17, found here unless JAVA_HOME says otherwise.
JAVA_HOME  ?= $(firstword $(wildcard /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/temurin-17-* /usr/lib/jvm/java-17-*))
export JAVA_HOME
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# -- set-up -------------------------------------------------------------------------------------
$(STAMP): requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' \
	  || { echo "make: Python >= 3.11 is needed (found $$($(PYTHON) --version 2>&1)): install it or pass PYTHON=..."; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@$(VPY) -m pip install --quiet --upgrade pip
	@$(VPY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

$(IAM_STAMP): lab/iam/package.json lab/iam/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm (Node.js >= 20) is needed for lab/iam: install nodejs and npm"; exit 1; }
	@cd lab/iam && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

.PHONY: venv
venv: $(STAMP) $(IAM_STAMP) ## create .venv with the pinned Python dependencies, and lab/iam's Node packages

.PHONY: check-java
check-java:
	@test -n "$(JAVA_HOME)" -a -x "$(JAVA_HOME)/bin/java" \
	  || { echo "make: no JDK 17 found: install openjdk-17-jdk or set JAVA_HOME (ansible-rulebook needs it)"; exit 1; }

# -- the lab ------------------------------------------------------------------------------------
.PHONY: lab-build lab-up lab-down lab-status lab-env lab-inject
lab-build: ## build or reuse the pinned lab binaries (cached outside the repo)
	@lab/build.sh >/dev/null

lab-up: $(STAMP) $(IAM_STAMP) lab-build ## start the lab (Kubernetes, kwok, metrics-server, AWS server, Karpenter's AWS controller)
	@$(LABCTL) up

lab-down: $(STAMP) ## stop every lab process and free its ports
	@$(LABCTL) down

lab-status: $(STAMP) ## list the lab components, PIDs, ports and health
	@$(LABCTL) status

lab-env: $(STAMP) ## print shell exports: eval "$$(make -s lab-env)"
	@$(LABCTL) env

lab-inject: $(STAMP) ## inject an event: make lab-inject EVENT=spot-interruption INSTANCE=i-... [ARGS=...]
	@$(LABCTL) inject $(EVENT) $(if $(INSTANCE),--instance-id $(INSTANCE)) $(ARGS)

# -- AWX / automation controller / EDA controller ------------------------------------------------
# Build contexts only: `ansible-builder build` (podman or docker) turns them into images elsewhere.
.PHONY: ee
ee: $(STAMP) ## write the execution and decision environment build contexts to build/ee and build/de
	@$(VENV)/bin/ansible-builder create -f ee/execution-environment.yml -c build/ee --output-filename Containerfile
	@$(VENV)/bin/ansible-builder create -f ee/decision-environment.yml -c build/de --output-filename Containerfile

.PHONY: controller-rulebook
controller-rulebook: $(STAMP) ## regenerate rulebooks/cluster_events_controller.yml from rulebooks/cluster_events.yml
	@$(VPY) rulebooks/controller_rulebook.py

# Project signing for automation controller's content signing: MANIFEST.in says what is signed; GPG_KEY picks
# the key (default: gpg's first). The passphrase comes from gpg-agent: ansible-sign needs GPG_TTY for that, and
# passing an empty passphrase instead makes a bad signature for a key without one.
.PHONY: sign
sign: $(STAMP) ## sign the project (ansible-sign, GPG): writes .ansible-sign/, to commit
	@GPG_TTY=$${GPG_TTY:-$$(tty 2>/dev/null || echo /dev/null)} \
	  $(VENV)/bin/ansible-sign project gpg-sign $(if $(GPG_KEY),--fingerprint $(GPG_KEY)) .

# -- demo and tests -----------------------------------------------------------------------------
.PHONY: demo
demo: lab-up ## build what is needed, start the lab, converge site.yml and the event bus on it, print a summary
	@$(VENV)/bin/ansible-playbook -i inventories/lab playbooks/site.yml
	@$(VENV)/bin/ansible-playbook -i inventories/lab playbooks/event_bus.yml
	@$(LABCTL) status
	@echo
	@echo "Event-driven remediation: start the rulebook in one terminal,"
	@echo "    make rulebook"
	@echo "then, in another, warn of a spot interruption on a node and watch it get cordoned and drained:"
	@node=$$(eval "$$($(LABCTL) env)"; kubectl get nodes -o jsonpath='{.items[0].metadata.name}'); \
	  echo "    make lab-inject EVENT=spot-interruption ARGS=\"--node $$node\""
	@echo "    kubectl get nodes   (after: eval \"\$$(make -s lab-env)\")"

.PHONY: rulebook
rulebook: $(STAMP) check-java ## run rulebooks/cluster_events.yml on the lab (after make demo)
	@eval "$$($(LABCTL) env)" && $(VENV)/bin/ansible-rulebook -r rulebooks/cluster_events.yml \
	  -i inventories/lab --vars rulebooks/vars/lab.yml --print-events

.PHONY: lint
lint: $(STAMP) ## ansible-lint (production profile) and yamllint
	@$(VENV)/bin/ansible-lint

.PHONY: unit
# Every test folder that needs no lab: the collection's plugins, the roles, playbooks and rulebooks, the lab's own
# components. No lab runs, but some tests need its helm and Karpenter's charts (CRD validation, the chart repository).
# --durations: where CI's 90 minutes go, printed with every run.
NO_LAB_TESTS := tests/plugins tests/roles tests/lab
unit: $(STAMP) $(IAM_STAMP) lab-build ## tests that need no lab (tests/plugins, tests/roles, tests/lab)
	@$(VPY) -m pytest $(NO_LAB_TESTS) -q --durations=10

.PHONY: integration
integration: $(STAMP) $(IAM_STAMP) lab-build check-java ## functional tests on the lab, tests/functional (starts it, stops it at the end)
	@$(VPY) -m pytest tests/functional -q --durations=40

# Every scenario, one after another, the house way: CHECK on a clean lab, apply, idempotent CHECK, idempotent
# apply, verify; the scenario's cleanup runs whether they passed or not. The idempotent CHECK needs its own
# command (`-- --check`), which a molecule sequence cannot express: molecule/default/molecule.yml says why.
# SCENARIOS picks some, e.g. make molecule SCENARIOS="default karpenter".
SCENARIOS ?= $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))
.PHONY: molecule
molecule: $(STAMP) ## Molecule scenarios on the running lab (start it with make lab-up)
	@test -f inventories/lab/group_vars/all/lab.yml || { echo "make: no lab inventory: start the lab with make lab-up"; exit 1; }
	@m=$(VENV)/bin/molecule; \
	for s in $(SCENARIOS); do \
	  $$m check -s $$s && $$m converge -s $$s && $$m idempotence -s $$s -- --check \
	    && $$m idempotence -s $$s && $$m verify -s $$s; rc=$$?; \
	  $$m destroy -s $$s || exit 1; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	done

# Faults on a lab of their own (too slow for `make test`'s CI budget; README gives the durations).
.PHONY: chaos
chaos: $(STAMP) $(IAM_STAMP) lab-build check-java ## fault tests on a lab of their own (about 18 min): check mode compared, AWS server, apiserver and rulebook killed mid-run
	@$(VPY) -m pytest tests/chaos -q -rA --durations=0; rc=$$?; $(LABCTL) down; exit $$rc

.PHONY: test
test: ## everything CI checks
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory molecule-default

# The whole setup the molecule way (check, converge, idempotent check, idempotent converge, verify,
# cleanup) on a lab of its own; the per-role scenarios run with `make molecule`.
.PHONY: molecule-default
molecule-default: $(STAMP) lab-build
	@$(MAKE) --no-print-directory lab-up
	@$(MAKE) --no-print-directory molecule SCENARIOS=default; rc=$$?; $(MAKE) --no-print-directory lab-down; exit $$rc

.PHONY: bench
bench: $(STAMP) $(IAM_STAMP) lab-build ## benchmarks, JSON results under bench/results/
	@$(VPY) -m bench.lab_bench
	@$(VPY) -m bench.site_bench
	@$(VPY) -m bench.interruption_bench
	@$(VPY) -m bench.iam_eval_bench
