# runway: the front door. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.runway-installed
# Targets depend on this; `INSTALL=` runs them in an existing environment as is.
INSTALL ?= $(STAMP)

SPEC ?= experiments/breast_cancer.yaml
SET ?=
UI_PORT ?= 5000
MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_TRACKING_URI
# Where `make ui` serves the MLflow UI: the links `make train` / `make sweep` print point there.
RUNWAY_UI_URL ?= http://127.0.0.1:$(UI_PORT)
export RUNWAY_UI_URL
# The browser test drives Debian's chromium (make browser installs it)
CHROMIUM ?= /usr/bin/chromium
PYTEST_ARGS ?=
# make test's coverage report (in-process) and its floor, in percent; COV= turns it off (a subset).
# The whole suite measured 84.95% on 2026-12-07 (83.05% the run before); the floor
# sits a point under it for branches only timing reaches. Raise it when coverage rises, never
# lower it to let a change in.
COV_FLOOR ?= 83
COV ?= --cov=runway --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR)
# make test-fast's pytest-xdist workers (0: none, one process)
FAST_JOBS ?= 2

TRIALS ?=
WORKERS ?= 1

MODEL ?=
VERSION ?=
STAGE ?=
REVIEWER ?=
COMMENT ?=

# serving (make serve)
PORT ?= 8080
# make lint validates deploy/ against this Kubernetes version's schemas (offline, strict)
K8S_VERSION ?= 1.33.0

# batch scoring (make score)
INPUT ?=
OUTPUT ?=
CHUNK_ROWS ?=
KEY ?=
ENGINE ?= pandas
OUT ?=

# monitoring (make monitor / make retrain)
SINCE ?=
UNTIL ?=
WINDOW ?=
LABELS ?=
DATA ?=

.PHONY: mlflow-next help install train sweep ui status promote rollback history serve score monitor retrain test test-fast browser bench lint format data allowlist lock clean onnx lighten bundle team-up team-down team-env

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z_-]*:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev,onnx,team]'
	@touch $@

install: $(STAMP) ## create .venv with the pinned dependencies (requirements.lock)

train: $(INSTALL) ## train SPEC (default experiments/breast_cancer.yaml) as one MLflow run; SET="k=v ..." overrides
	$(BIN)/runway train $(SPEC) $(foreach s,$(SET),--set $(s))

sweep: $(INSTALL) ## Optuna sweep of SPEC's search space (TRIALS=, WORKERS=, RESUME=1); registers the best
	$(BIN)/runway sweep $(SPEC) $(if $(TRIALS),--trials $(TRIALS)) --workers $(WORKERS) $(if $(RESUME),--resume) $(foreach s,$(SET),--set $(s))

# Light on a laptop: one worker, no job runner (MLflow's GenAI jobs), no telemetry: two
# processes and about 0.5 GB instead of 16 and 3.5 GB with MLflow's defaults. A tracking
# server (team mode) serves its own UI: nothing to start.
ui: $(INSTALL) ## the MLflow UI on 127.0.0.1 (UI_PORT=5000) over the tracking store, light: 1 worker, no telemetry
	@case "$(MLFLOW_TRACKING_URI)" in http://*|https://*) echo "the tracking server serves its own MLflow UI: open $(MLFLOW_TRACKING_URI)"; exit 0;; esac; \
	echo "MLflow UI on http://127.0.0.1:$(UI_PORT) (store: $(MLFLOW_TRACKING_URI)); Ctrl-C stops it"; \
	echo "  runs table of an experiment: http://127.0.0.1:$(UI_PORT)/#/experiments/<id>/runs?workflowType=machine_learning"; \
	echo "  (the links runway train/sweep print). MLflow opens experiments on its GenAI overview until you"; \
	echo "  click 'Model training' at the top of the UI's sidebar once (your browser remembers it)."; \
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
	  exec $(BIN)/mlflow server --backend-store-uri $(MLFLOW_TRACKING_URI) --default-artifact-root ./mlruns \
	  --host 127.0.0.1 --port $(UI_PORT) --workers 1

status: $(INSTALL) ## registered versions: stage, aliases, metric, approval (MODEL= for one)
	$(BIN)/runway registry status $(MODEL)

promote: $(INSTALL) ## gate and promote: MODEL= VERSION= STAGE=Staging|Production [REVIEWER= COMMENT=]
	@test -n "$(MODEL)" -a -n "$(VERSION)" -a -n "$(STAGE)" || { echo "usage: make promote MODEL=<name> VERSION=<n> STAGE=Staging|Production [REVIEWER=<name>] [COMMENT=...]" >&2; exit 2; }
	$(BIN)/runway registry promote "$(MODEL)" "$(VERSION)" --to "$(STAGE)" $(if $(REVIEWER),--reviewer "$(REVIEWER)") $(if $(COMMENT),--comment "$(COMMENT)")

rollback: $(INSTALL) ## put the previous Production version of MODEL= back [REVIEWER= COMMENT=]
	@test -n "$(MODEL)" || { echo "usage: make rollback MODEL=<name> [REVIEWER=<name>] [COMMENT=...]" >&2; exit 2; }
	$(BIN)/runway registry rollback "$(MODEL)" $(if $(REVIEWER),--reviewer "$(REVIEWER)") $(if $(COMMENT),--comment "$(COMMENT)")

history: $(INSTALL) ## every recorded transition of MODEL=
	@test -n "$(MODEL)" || { echo "usage: make history MODEL=<name>" >&2; exit 2; }
	$(BIN)/runway registry history "$(MODEL)"

serve: $(INSTALL) ## serve the Production version of MODEL= on http://127.0.0.1:PORT (8080), following promotions (WORKERS=2 backends)
	@test -n "$(MODEL)" || { echo "usage: make serve MODEL=<name> [PORT=8080] [WORKERS=2]" >&2; exit 2; }
	$(BIN)/runway serve "$(MODEL)" --port $(PORT) $(if $(filter command line environment,$(origin WORKERS)),--workers $(WORKERS))
score: $(INSTALL) ## batch-score INPUT= into OUTPUT= with the Production version of MODEL= [VERSION= STAGE= KEY= CHUNK_ROWS= ENGINE=spark]
	@test -n "$(MODEL)" -a -n "$(INPUT)" -a -n "$(OUTPUT)" || { echo "usage: make score MODEL=<name> INPUT=<file or s3://...> OUTPUT=<file or s3://...> [VERSION=<n> | STAGE=Staging] [KEY=<id column>] [CHUNK_ROWS=<n>] [ENGINE=spark]" >&2; exit 2; }
	$(BIN)/runway score "$(MODEL)" --input "$(INPUT)" --output "$(OUTPUT)" $(if $(VERSION),--version "$(VERSION)",$(if $(STAGE),--stage "$(STAGE)")) $(if $(CHUNK_ROWS),--chunk-rows $(CHUNK_ROWS)) $(foreach k,$(KEY),--key-column $(k)) --engine $(ENGINE)

monitor: $(INSTALL) ## judge a window of MODEL='s prediction log [SINCE= UNTIL= WINDOW=1d LABELS= KEY=]; exit 10 = threshold crossed
	@test -n "$(MODEL)" || { echo "usage: make monitor MODEL=<name> [SINCE=<time>] [UNTIL=<time>] [WINDOW=1d] [LABELS=<file> KEY=<column>]" >&2; exit 2; }
	$(BIN)/runway monitor "$(MODEL)" $(if $(SINCE),--since "$(SINCE)") $(if $(UNTIL),--until "$(UNTIL)") $(if $(WINDOW),--window "$(WINDOW)") $(if $(LABELS),--labels "$(LABELS)") $(foreach k,$(KEY),--key-column $(k))

retrain: $(INSTALL) ## retrain MODEL='s Production spec on fresh data up to Staging [DATA= | LABELS= KEY= SINCE= WINDOW=]
	@test -n "$(MODEL)" || { echo "usage: make retrain MODEL=<name> [DATA=<file>] [LABELS=<file> KEY=<column> SINCE=<time> WINDOW=1d]" >&2; exit 2; }
	$(BIN)/runway retrain "$(MODEL)" $(if $(DATA),--data "$(DATA)") $(if $(LABELS),--labels "$(LABELS)") $(foreach k,$(KEY),--key-column $(k)) $(if $(SINCE),--since "$(SINCE)") $(if $(WINDOW),--window "$(WINDOW)")

onnx: $(INSTALL) ## MODEL= VERSION= as ONNX: converted, checked equal, registered as the next version (stage None)
	@test -n "$(MODEL)" -a -n "$(VERSION)" || { echo "usage: make onnx MODEL=<name> VERSION=<n>" >&2; exit 2; }
	$(BIN)/runway onnx convert "$(MODEL)" "$(VERSION)"

lighten: ## the old name of make onnx (still works, with a note)
	@echo "note: make lighten is now make onnx; the old name still works" >&2
	@$(MAKE) --no-print-directory onnx

bundle: $(INSTALL) ## edge bundle (model.onnx, contract, predict.py) of MODEL= into OUT= [VERSION= | STAGE=]
	@test -n "$(MODEL)" -a -n "$(OUT)" || { echo "usage: make bundle MODEL=<name> OUT=<dir> [VERSION=<n> | STAGE=Production]" >&2; exit 2; }
	$(BIN)/runway onnx export "$(MODEL)" --out "$(OUT)" $(if $(VERSION),--version "$(VERSION)",$(if $(STAGE),--stage "$(STAGE)"))

team-up: $(INSTALL) ## start the team stack on loopback: PostgreSQL, MLflow server with basic-auth (artifacts in .team/), S3 (moto) for data files (idempotent)
	$(BIN)/runway team up

team-down: ## stop the team stack (data kept in .team/); checks that nothing is left running
	$(BIN)/runway team down

team-env: ## print the export lines of a member's shell, for eval (MEMBER=name; default: admin)
	@$(BIN)/runway team env $(if $(MEMBER),--user $(MEMBER))

# Two tiers, one coverage file: the tests that start no server on FAST_JOBS workers, then the
# slow ones (servers, timing) one at a time; the report and its floor cover both.
test: $(INSTALL) browser ## run the whole test suite (unit, integration, e2e) with the coverage report and its floor
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m "not slow" -n $(FAST_JOBS) $(if $(COV),--cov=runway --cov-report=) $(PYTEST_ARGS)
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m slow $(if $(COV),$(COV) --cov-append) $(PYTEST_ARGS)

# pytest exits 5 when it selects nothing: make (and CI) fail then, as for a failed test.
test-fast: $(INSTALL) ## the inner loop: unit and integration tests that start no server, FAST_JOBS=2 workers
	$(BIN)/python -m pytest -m "not slow" -n $(FAST_JOBS) tests/unit tests/integration $(PYTEST_ARGS)

# The fast tier against the newest MLflow on the index, in a venv of its own (.venv-mlflow-next):
# moving to it is a decision (README "MLflow versions"), not a surprise. Not part of make test.
mlflow-next: ## run the fast tier against the newest MLflow on the package index (its own venv)
	@test -x .venv-mlflow-next/bin/python || $(PYTHON) -m venv .venv-mlflow-next
	.venv-mlflow-next/bin/python -m pip install --quiet -c requirements.lock -e '.[dev,onnx,team]'
	@newest=$$(.venv-mlflow-next/bin/python -m pip index versions mlflow 2>/dev/null | sed -n 's/^mlflow (\(.*\))$$/\1/p'); \
	  echo "newest MLflow on the index: $$newest"; \
	  .venv-mlflow-next/bin/python -m pip install --quiet "mlflow==$$newest" "mlflow[auth]==$$newest" \
	  || { echo "MLflow $$newest does not install here (the resolver says why above): stay on requirements.lock's" >&2; exit 1; }
	@.venv-mlflow-next/bin/python -c "import mlflow; print('fast tier against MLflow', mlflow.__version__)"
	.venv-mlflow-next/bin/python -m pytest -m "not slow" -n $(FAST_JOBS) tests/unit tests/integration $(PYTEST_ARGS)

browser: ## install Debian's chromium for the browser test, once (apt-get; CHROMIUM= to use another)
	@test -x "$(CHROMIUM)" || { \
	  echo "installing chromium for the browser test (apt-get)"; \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null; \
	}
	@test -x "$(CHROMIUM)" || { echo "no chromium at $(CHROMIUM); set CHROMIUM=/path/to/chromium" >&2; exit 1; }

bench: $(INSTALL) ## run the benchmarks in benchmarks/ and print their tables
	$(BIN)/python benchmarks/sweep_overhead.py
	$(BIN)/python benchmarks/training_threads.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/backend_client.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/monitor.py
	@# issue #31's table (runway beside plain anchors) and the start-up budget: exits 1 if missed
	$(BIN)/python benchmarks/fast.py
	$(BIN)/python benchmarks/onnx_models.py
	$(BIN)/python benchmarks/team.py
	$(BIN)/python benchmarks/team_sweep.py
	@# the serving fuzz test at full size: 10,000 generated requests, the count per status printed
	RUNWAY_FUZZ_PAYLOADS=10000 $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/e2e/test_serving_hardening.py -k generated_payloads

lint: $(INSTALL) ## ruff, mypy (0 errors), the layer contract, the Dockerfile (hadolint), deploy/ (kubernetes-validate)
	$(BIN)/ruff check src tests scripts benchmarks dags
	$(BIN)/ruff format --check src tests scripts benchmarks dags
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/kubernetes-validate --strict --quiet -k $(K8S_VERSION) $(filter-out %/kustomization.yaml,$(wildcard deploy/base/*.yaml))

format: $(INSTALL) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests scripts benchmarks dags
	$(BIN)/ruff format src tests scripts benchmarks dags

data: $(INSTALL) ## regenerate data/churn.csv from scripts/make_churn_data.py
	$(BIN)/python scripts/make_churn_data.py --out data/churn.csv

allowlist: $(INSTALL) ## regenerate src/runway/core/governance/skops_types.txt, the types runway loads (review the diff)
	$(BIN)/python scripts/skops_allowlist.py

lock: $(INSTALL) ## re-pin requirements.lock from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^runway' > requirements.lock

clean: ## remove caches (keeps .venv, mlflow.db and mlruns)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
