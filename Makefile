# shoplens: e-commerce product classification and visual search.
# `make help` lists the targets. Every variable's default lives in src/shoplens/config.py.

.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# The config module's defaults as `VAR ?= value` lines; `make VAR=value` overrides them.
-include .make/config.mk
.make/config.mk: src/shoplens/config.py
	@mkdir -p $(@D)
	@PYTHONPATH=src $(PYTHON) -m shoplens.config > $@.tmp && mv $@.tmp $@

override CATALOG := $(patsubst %/,%,$(CATALOG))
CATALOG_CSV = $(if $(filter %.csv,$(CATALOG)),$(CATALOG),$(firstword $(wildcard $(CATALOG)/catalog.csv $(CATALOG)/styles.csv) $(CATALOG)/catalog.csv))
# The demo catalog is made on demand; any other catalog must exist (make-dataset says so if not).
CATALOG_INPUT = $(filter $(DEMO_DIR)/catalog.csv,$(CATALOG_CSV)) $(wildcard $(CATALOG_CSV))

COLUMN_ARGS = $(if $(ID_COL),--id-col "$(ID_COL)") $(if $(TITLE_COL),--title-col "$(TITLE_COL)") \
	$(if $(IMAGE_COL),--image-col "$(IMAGE_COL)") $(if $(CATEGORY_COL),--category-col "$(CATEGORY_COL)") \
	$(if $(CATEGORY_SEP),--category-sep "$(CATEGORY_SEP)") $(if $(LEVEL_COLS),--level-cols "$(LEVEL_COLS)") \
	$(if $(IMAGE_DIR),--image-dir "$(IMAGE_DIR)")
ARGS_demo = --n $(DEMO_N) --seed $(DEMO_SEED) --out "$(DEMO_DIR)"
ARGS_data = --catalog "$(CATALOG)" $(strip $(COLUMN_ARGS)) --levels $(LEVELS) --language $(LANGUAGE) \
	--min-items $(MIN_ITEMS) --subsample $(SUBSAMPLE) --split $(SPLIT) --seed $(SEED)
ARGS_features = --image-size $(IMAGE_SIZE) --vocab-size $(VOCAB_SIZE) --title-length $(TITLE_LENGTH)
MODEL_NAME = $(CLASSMODE)_$(MODELMODE)
MODEL_ARGS = --classmode $(CLASSMODE) --modelmode $(MODELMODE)
ARGS_train_$(MODEL_NAME) = $(MODEL_ARGS) --backbone $(BACKBONE) --weights "$(WEIGHTS)" \
	$(if $(filter 1 true yes,$(FINETUNE)),--finetune,--frozen) --text-encoder $(TEXT_ENCODER) --epochs $(EPOCHS) \
	--batch-size $(BATCH_SIZE) --learning-rate $(LEARNING_RATE) --patience $(PATIENCE) \
	$(if $(filter 1 true yes,$(CLASS_WEIGHTS)),--class-weights,--no-class-weights) --precision $(PRECISION) \
	--seed $(SEED)

DATA_OUT := data/processed/summary.json
FEATURES_OUT := data/processed/features/features.json
MODEL_OUT = models/$(MODEL_NAME).keras
METRICS_OUT = reports/metrics/$(MODEL_NAME).json

.PHONY: help demo test data features model_train model_predict tensorboard demo-catalog benchmark \
	benchmark-data benchmark-models lint clean FORCE

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: $(INSTALLED) ## Set up, generate the demo catalog and run the pipeline on it
	@$(MAKE) --no-print-directory model_predict CATALOG=$(DEMO_DIR) CLASSMODE=multilabel MODELMODE=combined \
		BACKBONE=simple WEIGHTS=none EPOCHS=$(DEMO_EPOCHS)
	@echo
	@$(BIN)/shoplens summary
	@echo "results: data/processed/ (splits, features), models/multilabel_combined.keras, reports/"

test: $(INSTALLED) ## Set up and run the test suite
	$(BIN)/pytest

demo-catalog: $(DEMO_DIR)/catalog.csv ## Generate the demo catalog (DEMO_N items, DEMO_SEED)
$(DEMO_DIR)/catalog.csv: .make/demo.args src/shoplens/data/demo_catalog.py | $(INSTALLED)
	$(BIN)/shoplens demo-catalog $(ARGS_demo)

data: $(DATA_OUT) ## Validate, clean and split CATALOG into data/processed/
	@echo "data: $(DATA_OUT) is up to date"
$(DATA_OUT): $(CATALOG_INPUT) .make/data.args $(wildcard src/shoplens/data/*.py) | $(INSTALLED)
	$(BIN)/shoplens make-dataset $(ARGS_data)

features: $(FEATURES_OUT) ## Preprocess images, fit vocabulary and label encoders
	@echo "features: $(FEATURES_OUT) is up to date"
$(FEATURES_OUT): $(DATA_OUT) .make/features.args $(wildcard src/shoplens/features/*.py) | $(INSTALLED)
	$(BIN)/shoplens build-features $(ARGS_features)

model_train: $(MODEL_OUT) ## Train a classifier (CLASSMODE, MODELMODE, BACKBONE, WEIGHTS, ...)
	@echo "model_train: $(MODEL_OUT) is up to date"
$(MODEL_OUT): $(FEATURES_OUT) .make/train_$(MODEL_NAME).args $(wildcard src/shoplens/models/*.py) | $(INSTALLED)
	$(BIN)/shoplens train $(ARGS_train_$(MODEL_NAME))

model_predict: $(METRICS_OUT) ## Evaluate a trained model on the test split and print its report
	@$(BIN)/shoplens report $(MODEL_ARGS)
$(METRICS_OUT): $(MODEL_OUT)
	$(BIN)/shoplens evaluate $(MODEL_ARGS) > /dev/null

tensorboard: $(INSTALLED) ## TensorBoard on logs/
	$(BIN)/tensorboard --logdir logs

benchmark: benchmark-data benchmark-models ## Run every benchmark; results in reports/benchmarks/

benchmark-data: $(INSTALLED) ## Time data + features on a 100,000-item demo catalog
	$(BIN)/python benchmarks/data.py

benchmark-models: $(INSTALLED) ## Train and evaluate every model on the fashion catalog
	$(BIN)/python benchmarks/models.py

lint: $(INSTALLED) ## Check the code style
	$(BIN)/ruff check src tests benchmarks

clean: ## Remove generated data, stamps and caches (keeps .venv and data/raw)
	find data/interim data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .make .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

$(INSTALLED): requirements.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

# A target's options, rewritten only when they change: changing an option re-runs
# the target, and a second run with the same options does nothing.
.make/%.args: FORCE
	@mkdir -p $(@D)
	@echo '$(ARGS_$*)' | cmp -s - $@ || echo '$(ARGS_$*)' > $@

FORCE:
.PRECIOUS: .make/%.args
