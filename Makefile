# imageshare: the obvious targets. `make run` and `make test` work on a fresh
# machine with only python3 (3.11+): they build .venv from the pinned
# requirements first (requirements-dev.txt: the runtime's requirements.txt
# plus the test, lint and type-check tools; production installs only
# requirements.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/imageshare

.PHONY: run test test-sqlite test-postgres lint typecheck format bench-engine bench-pipeline bench-analysis bench-auth bench-latency load soak clean

$(STAMP): requirements.txt requirements-dev.txt
	@# Debian packages the project uses when they are missing and we may
	@# install them: redis-server carries the workers' monitoring events
	@# (without it the stack runs with monitoring off); chromium runs the
	@# browser test (without it that test is skipped).
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "note: missing$$missing and no root to install: those parts are skipped"; fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP)
	$(PY) -m ops.devstack run

# Lint, type check, then the whole suite on SQLite, then again on PostgreSQL when one answers on 127.0.0.1:5432.
test: lint typecheck test-sqlite test-postgres

test-sqlite: $(STAMP)
	env -u DATABASE_URL $(PY) -m pytest

test-postgres: $(STAMP)
	@if $(PY) -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))"; then \
		echo "== the suite again on PostgreSQL ($(PG_URL))"; \
		DATABASE_URL=$(PG_URL) $(PY) -m pytest -m "not ownstack"; \
	else \
		echo "== PostgreSQL does not answer on 127.0.0.1:5432: PostgreSQL run skipped"; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy on the typed scope: the `files` list under [tool.mypy] in pyproject.toml.
typecheck: $(STAMP)
	$(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

$(VENV)/.bench-installed: $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

bench-engine: $(VENV)/.bench-installed
	$(PY) -m bench.engine $(if $(CORPUS),--corpus $(CORPUS),$(if $(wildcard ../shared/corpus),--corpus ../shared/corpus,))

# The analysis stage (faces, masks) beside the resize engine, images/s/core and the model's memory (docs/analysis.md).
bench-analysis: $(STAMP)
	$(PY) -m bench.analysis $(if $(CORPUS),--corpus $(CORPUS),$(if $(wildcard ../shared/corpus),--corpus ../shared/corpus,))

# The worker pipeline against the engine alone, same photos and processes (docs/pipeline.md).
bench-pipeline: $(VENV)/.bench-installed
	$(PY) -m bench.pipeline $(if $(CORPUS),--corpus $(CORPUS),$(if $(wildcard ../shared/corpus),--corpus ../shared/corpus,)) $(PIPELINE_ARGS)

# The mask classifier's precision and recall on labelled sets built from registry packages' faces (docs/masks.md);
# MASKS_ARGS=--sheet var/masks-sheet.png also draws the photo set's crops. Retrain: $(PY) -m bench.masks_train
.PHONY: bench-masks
bench-masks: $(STAMP)
	$(PY) -m bench.masks_eval $(MASKS_ARGS)

# Upload p50 with a token, basic auth and /api/upload's form credentials, over HTTP.
bench-auth: $(STAMP)
	$(PY) -m bench.auth

# Upload -> all renditions ready for 12 MP JPEGs arriving at half the measured capacity (LATENCY_ARGS: --count, --load).
bench-latency: $(STAMP)
	$(PY) -m bench.latency $(LATENCY_ARGS)

# A load generator against a running stack (make run): URL, LOAD_USER, PASSWORD, RATE, FOLDER, COUNT, LOAD_ARGS.
load: $(VENV)/.bench-installed
	@test -n "$(PASSWORD)" || { echo "usage: make load PASSWORD=... [URL=http://127.0.0.1:8000/api/upload RATE=2 FOLDER=../shared/corpus COUNT=120 LOAD_ARGS=--burst 100]"; exit 2; }
	$(PY) -m bench.load $(or $(URL),http://127.0.0.1:8000/api/upload) $(or $(LOAD_USER),admin) $(PASSWORD) \
		$(or $(RATE),2) $(or $(FOLDER),../shared/corpus) $(COUNT) $(LOAD_ARGS)

# Web-tier CPU per upload, multipart against direct (presign, S3, finalize), on a fresh local stack (docs/uploads.md).
.PHONY: bench-direct
bench-direct: $(STAMP)
	$(PY) -m bench.direct $(if $(CORPUS),--corpus $(CORPUS),) $(DIRECT_ARGS)

# Ten minutes at 70 % of the measured capacity on a fresh local stack: losses, 5xx and the RSS slope.
soak: $(VENV)/.bench-installed
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
