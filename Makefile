# The two commands that matter:
#   make serve   set up, train the default models if missing, then serve them
#   make test    set up everything the tests need, lint, type-check and run the tests
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MODELS ?= models
DEFAULT_MODELS := $(MODELS)/elec-demand $(MODELS)/sp500

.PHONY: serve test setup setup-dev system-deps models train suite lint bench fuzz clean protos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The serving side alone: no torch.
setup: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Everything: serving, training (torch 2.13.0 CPU) and the test tools.
setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,dev]'

# Train the default models only when they are not in models/ already (they are committed).
models: setup
	@missing=0; for d in $(DEFAULT_MODELS); do [ -f $$d/1/manifest.json ] || missing=1; done; \
	if [ $$missing = 1 ]; then \
		$(BIN)/pip install --quiet -e '.[train]' && $(BIN)/python -m training ensure --out $(MODELS); \
	else echo "default models present in $(MODELS)/"; fi

serve: models
	@# Local development only: no API keys on 127.0.0.1 (the service warns loudly at start).
	FORECAST_HOST=127.0.0.1 FORECAST_AUTH_DISABLED=true FORECAST_MODELS_DIR=$(MODELS) \
		$(BIN)/python -m service

# Retrain both default models from scratch (about 10 minutes each on 2 cores).
train: setup-dev
	$(BIN)/python -m training all --config elec-demand --out $(MODELS)
	$(BIN)/python -m training all --config sp500 --out $(MODELS)

# The accuracy suite: the default recipes on five real public series (about 20 minutes
# on 2 cores; not part of `make test`, whose tests/training runs a tiny version of it).
suite: setup-dev
	$(BIN)/python -m training suite --runs runs

# Debian packages the integration tests start themselves (Prometheus, Redis, nginx).
system-deps:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null && \
		command -v redis-server >/dev/null && { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			prometheus redis-server nginx >/dev/null; }

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup-dev system-deps lint
	$(BIN)/python -m pytest -q

bench: setup-dev
	$(BIN)/python -m bench --quick

# Schemathesis, every check, against the default models with authentication on
# (more than 1,000 generated cases; the test suite runs a few hundred).
fuzz: setup-dev
	$(BIN)/python -m bench.fuzz_api --max-examples 150

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

# Regenerate the KServe v2 gRPC messages (service/protocol/grpc_v2_pb2.py/.pyi) after
# editing grpc_v2.proto; tests/service/test_grpc_v2_proto.py fails while they are stale.
protos: setup-dev
	$(BIN)/python -m grpc_tools.protoc -I service/protocol --python_out=service/protocol \
		--pyi_out=service/protocol service/protocol/grpc_v2.proto
