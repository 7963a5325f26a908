# nc-audit: every target sets itself up. `make demo` and `make test` work on a fresh clone.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch lies on this machine's disk; users with GPUs install any torch in the package's range.
TORCH  ?= torch==2.13.0

.PHONY: install test test-all demo lint typecheck bench gpu-check samples cma-experiment readme studies study-label-smoothing study-prune study-semi-supervised study-regularizer study-lmc grokking-transformer grokking-seeds grokking-reference grokking-reference-seeds clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# `make test` is the newcomer's fast set: every test not marked slow, on every core (pytest-xdist, at
# most 4 workers). `make test-all` (CI, .ci/run) runs every test, the slow ones too (the README's
# regenerated blocks, the bench smoke run, killed-and-resumed runs, hostile cases that train or
# extract), in one process.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n auto --maxprocesses 4

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(MAKE) --no-print-directory typecheck

# mypy on the package, configured in pyproject.toml [tool.mypy] (warm runs reuse .mypy_cache).
typecheck: $(STAMP)
	$(PY) -m mypy

SAMPLES    := sample_checkpoints/digits-mlp
LAST_CKPT   = $(lastword $(sort $(wildcard $(SAMPLES)/epoch_*.pt)))

demo: $(STAMP)
	$(VENV)/bin/nc-audit measure $(LAST_CKPT) --features $(LAST_CKPT:.pt=.h5)

bench: $(STAMP)
	$(PY) benchmarks/bench.py

# The GPU check (benchmarks/gpu_check.py): CUDA tests + benchmark rows on CUDA beside the CPU; without CUDA
# it runs the rows on the CPU at --quick size. On a GPU machine whose python3 already has a CUDA torch
# (and no .venv): `make gpu-check GPU_PY=python3`.
GPU_PY ?= $(PY)

gpu-check: $(if $(filter $(PY),$(GPU_PY)),$(STAMP))
	PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

cma-experiment: $(STAMP)
	$(PY) scripts/cma_experiment.py

samples: $(STAMP)
	$(PY) scripts/make_samples.py --out $(SAMPLES)

# Every output block of README.md, rerun from the real commands (after `make samples`, `make bench`, ...).
readme: $(STAMP)
	$(PY) scripts/readme.py

# The studies of the README (one thread: tiny models; on shared cores more threads spin-wait). Each resumes
# a killed run (--resume) and writes its table to benchmarks/, its plot to docs/, its runs to studies/.
NC_AUDIT := $(VENV)/bin/nc-audit
studies: study-label-smoothing study-prune study-semi-supervised study-regularizer study-lmc grokking-transformer grokking-seeds \
	grokking-reference grokking-reference-seeds

study-label-smoothing: $(STAMP)
	$(NC_AUDIT) study label-smoothing --resume --threads 1 --out studies/label-smoothing \
		--plot docs/label_smoothing.png --markdown benchmarks/LABEL_SMOOTHING.md

study-prune: $(STAMP)
	$(NC_AUDIT) prune $(LAST_CKPT) --data digits --resume --threads 1 --out studies/prune \
		--plot docs/pruning.png --markdown benchmarks/PRUNING.md
	$(NC_AUDIT) prune $(LAST_CKPT) --data digits --resume --threads 1 --out studies/prune-layer --scope layer \
		--markdown benchmarks/PRUNING_LAYER.md
	$(NC_AUDIT) prune $(LAST_CKPT) --data digits --resume --threads 1 --out studies/prune-finetune \
		--finetune-epochs 3 --markdown benchmarks/PRUNING_FINETUNE.md
	$(NC_AUDIT) study prune --resume --threads 1 --out studies/prune-seeds --plot docs/pruning_seeds.png \
		--markdown benchmarks/PRUNING_SEEDS.md

study-semi-supervised: $(STAMP)
	$(NC_AUDIT) study semi-supervised --resume --threads 1 --out studies/semi-supervised \
		--plot docs/semi_supervised.png --markdown benchmarks/SEMI_SUPERVISED.md

study-regularizer: $(STAMP)
	$(NC_AUDIT) study regularizer --resume --threads 1 --out studies/regularizer \
		--plot docs/regularizer.png --markdown benchmarks/REGULARIZER.md

study-lmc: $(STAMP)
	$(NC_AUDIT) study lmc --resume --threads 1 --out studies/lmc \
		--plot docs/lmc.png --markdown benchmarks/LMC.md

# The transformer demo over seeds 0-2 (grokking steps as mean ± spread), and Nanda et al.'s configuration
# (p = 113, 30 % train, d_model 128, weight decay 1: about 1.8 h of one core, grokking near step 5,500; resumable, not in `studies`).
grokking-seeds: $(STAMP)
	for seed in 0 1 2; do $(NC_AUDIT) demo grokking --model transformer --seed $$seed --resume --threads 1 \
		--quiet --out studies/grokking-transformer-seed$$seed || exit 1; done
	$(VENV)/bin/python scripts/grokking_seeds.py studies/grokking-transformer-seed0 studies/grokking-transformer-seed1 \
		studies/grokking-transformer-seed2 > benchmarks/GROKKING_SEEDS.md

# Nanda et al.'s reference configuration: seed 0 for their 40,000 steps (about 1.5 h of one core), seeds 1
# and 2 for 10,000 (grokking came at step 5,500 for seed 0), then the grokking steps over the three seeds.
REFERENCE := demo grokking --model transformer --p 113 --train-fraction 0.3 --d-model 128 --heads 4 \
	--weight-decay 1 --save-every 500 --resume --threads 1

grokking-reference: $(STAMP)
	$(NC_AUDIT) $(REFERENCE) --steps 40000 --out studies/grokking-reference
	cp studies/grokking-reference/grokking.png docs/grokking_reference.png
	cp studies/grokking-reference/SUMMARY.md benchmarks/GROKKING_REFERENCE.md

grokking-reference-seeds: $(STAMP)
	for seed in 1 2; do $(NC_AUDIT) $(REFERENCE) --steps 10000 --seed $$seed --quiet \
		--out studies/grokking-reference-seed$$seed || exit 1; done
	$(VENV)/bin/python scripts/grokking_seeds.py studies/grokking-reference studies/grokking-reference-seed1 \
		studies/grokking-reference-seed2 > benchmarks/GROKKING_REFERENCE_SEEDS.md

grokking-transformer: $(STAMP)
	$(NC_AUDIT) demo grokking --model transformer --resume --threads 1 --out studies/grokking-transformer
	cp studies/grokking-transformer/grokking.png docs/grokking_transformer.png
	cp studies/grokking-transformer/SUMMARY.md benchmarks/GROKKING_TRANSFORMER.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
