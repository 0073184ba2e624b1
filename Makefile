# The one place that says how to install, lint, type-check, test and demo. CI runs these targets.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo dev test test-unit faults fuzz bench-api lint fmt typecheck check deploy-check docker-pins bench bench-catalog-cpu gpu-check gpu-check-cpu clean

$(STAMP): pyproject.toml
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server'; }
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing chromium and chromium-driver (apt-get), for the playground's browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver'; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first, pinned to the CPU build on disk, so nothing below pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/reelforge demo

dev: $(STAMP)
	$(BIN)/reelforge dev

test: $(STAMP)
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

# The fault suite of `make test` at five times the jobs and faults; its table goes to
# out/faults-table.md (untracked), to be copied into docs/faults.md with the date.
faults: $(STAMP)
	FAULT_SCALE=5 FAULT_REPORT=out/faults-table.md $(BIN)/pytest tests/faults -p no:cacheprovider

# The schemathesis run of `make test`, with ten times the cases per operation.
fuzz: $(STAMP)
	FUZZ_EXAMPLES=300 $(BIN)/pytest tests/integration/test_fuzz.py

PY_DIRS := shared scheduler workers tests bench k8s docker

fmt: $(STAMP)
	$(BIN)/ruff format $(PY_DIRS)

lint: $(STAMP)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/ruff check $(PY_DIRS)

typecheck: $(STAMP)
	$(BIN)/mypy

# Images, compose.yaml and k8s/, offline: no container daemon, registry or cluster needed.
COMPOSE = $$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')

deploy-check: $(STAMP)
	$(BIN)/hadolint docker/api.Dockerfile docker/worker.Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	env -i PATH="$$PATH" HOME="$$HOME" $(COMPOSE) -f compose.yaml --env-file .env.example --profile '*' config --quiet
	$(BIN)/python k8s/validate.py

check: lint typecheck deploy-check

# The versions the images install (docker/*-requirements.txt), from this environment.
docker-pins: $(STAMP)
	$(BIN)/python docker/pins.py

bench: $(STAMP)
	$(BIN)/python -m bench.sampler --preset cpu-small

# API latency and throughput with 1k, 100k and 1M stored jobs (docs/perf.md).
bench-api: $(STAMP)
	$(BIN)/python -m bench.api

# The gpu-catalog preset's code path at a CI size on the CPU, plain vs ours with one kernel and FP32.
bench-catalog-cpu: $(STAMP)
	$(BIN)/python -m bench.sampler --preset gpu-catalog --device cpu --tiny --dtype fp32 --sdpa math

# One GPU, no internet, under 8 minutes: the table goes to $(GPU_CHECK_OUT) (+ .json). Where our venv
# is absent (the GPU machine: newer PyTorch, no diffusers), run it with the machine's Python and the
# wheels carried in (docs/perf.md): make gpu-check GPU_PY=python3 GPU_PYTHONPATH=/tmp/site
GPU_PY ?= $(BIN)/python
GPU_PYTHONPATH ?=
GPU_CHECK_OUT ?= gpu-check.md
gpu-check:
	PYTHONPATH=$(if $(GPU_PYTHONPATH),$(GPU_PYTHONPATH):)$(CURDIR) $(GPU_PY) -m bench.gpu_check --out $(GPU_CHECK_OUT)

gpu-check-cpu: $(STAMP)
	$(BIN)/python -m bench.gpu_check --device cpu --tiny --out gpu-check-cpu.md

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
