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
	--seed $(SEED) --strategy $(STRATEGY)

DATA_OUT := data/processed/summary.json
FEATURES_OUT := data/processed/features/features.json
MODEL_OUT = models/$(MODEL_NAME).keras
METRICS_OUT = reports/metrics/$(MODEL_NAME).json

# search: extraction (one shard of NUM_SHARDS, or all items), the index, queries
EXTRACT_NAME = extract_$(SHARD)_of_$(NUM_SHARDS)
ARGS_$(EXTRACT_NAME) = --model $(SEARCH_IMAGE_MODEL) --layer $(EMBEDDING_LAYER) --shard $(SHARD) \
	--num-shards $(NUM_SHARDS)
ARGS_index = --kind $(INDEX) --threshold $(INDEX_FAISS_THRESHOLD)
EMBEDDINGS_OUT := models/extracted_features.npz
EXTRACT_OUT = $(if $(filter 1,$(NUM_SHARDS)),$(EMBEDDINGS_OUT),models/extracted_features-$(SHARD)-of-$(NUM_SHARDS).npz)
INDEX_OUT := models/search_index.json
SEARCH_METRICS_OUT := reports/metrics/search.json
SEARCH_ARGS = $(if $(IMAGE),--image "$(IMAGE)") $(if $(QUERY),--text "$(QUERY)") $(if $(ITEM),--item "$(ITEM)") \
	-k $(K) $(if $(FILTERS),--filter "$(FILTERS)") $(if $(CATEGORY),--category "$(CATEGORY)") \
	$(if $(filter 1 true yes,$(SAME_CATEGORY)),--same-category) $(if $(GRID),--grid "$(GRID)")
DEMO_SEARCH = CATALOG=$(DEMO_DIR) BACKBONE=simple WEIGHTS=none EPOCHS=$(DEMO_EPOCHS)

.PHONY: help demo test data features model_train model_predict tensorboard demo-catalog benchmark docs \
	model_extract_features merge_features index search evaluate_search benchmark-search \
	benchmark-data benchmark-models benchmark-scale lint clean FORCE serve benchmark-serve

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo: $(INSTALLED) ## Set up, generate the demo catalog and run the pipeline on it
	@$(MAKE) --no-print-directory model_predict CATALOG=$(DEMO_DIR) CLASSMODE=multilabel MODELMODE=combined \
		BACKBONE=simple WEIGHTS=none EPOCHS=$(DEMO_EPOCHS)
	@echo
	@$(MAKE) --no-print-directory model_train $(DEMO_SEARCH) CLASSMODE=multilabel MODELMODE=image
	@$(MAKE) --no-print-directory model_train $(DEMO_SEARCH) CLASSMODE=multilabel MODELMODE=text
	@echo
	@$(MAKE) --no-print-directory evaluate_search $(DEMO_SEARCH)
	@echo
	@$(MAKE) --no-print-directory search $(DEMO_SEARCH) IMAGE="$$(ls -d $(DEMO_DIR)/images/*.jpg | head -1)" \
		GRID=reports/figures/search_image.png
	@echo
	@$(MAKE) --no-print-directory search $(DEMO_SEARCH) QUERY="red running shoes for men" \
		GRID=reports/figures/search_text.png
	@echo
	@$(BIN)/shoplens summary
	@echo "results: data/processed/ (splits, features), models/multilabel_{combined,image,text}.keras, \
	models/extracted_features.npz, reports/"
	@echo "gallery: make serve, then open http://$(HOST):$(PORT)/"

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
# Retrain when the code that builds or trains a model changes, not when prediction or extraction does.
MODEL_CODE := $(addprefix src/shoplens/models/,build_model.py datasets.py distribute.py train_model.py)
$(MODEL_OUT): $(FEATURES_OUT) .make/train_$(MODEL_NAME).args $(MODEL_CODE) | $(INSTALLED)
	$(BIN)/shoplens train $(ARGS_train_$(MODEL_NAME))

model_predict: $(METRICS_OUT) ## Evaluate a trained model on the test split and print its report
	@$(BIN)/shoplens report $(MODEL_ARGS)
$(METRICS_OUT): $(MODEL_OUT)
	$(BIN)/shoplens evaluate $(MODEL_ARGS) > /dev/null

model_extract_features: $(EXTRACT_OUT) ## Embed every item with the image model (SEARCH_IMAGE_MODEL; SHARD, NUM_SHARDS)
	@echo "model_extract_features: $(EXTRACT_OUT) is up to date"
$(EXTRACT_OUT): $(FEATURES_OUT) .make/$(EXTRACT_NAME).args $(wildcard models/$(SEARCH_IMAGE_MODEL).keras) \
		src/shoplens/models/extract_features.py | $(INSTALLED)
	$(BIN)/shoplens extract-features $(ARGS_$(EXTRACT_NAME))

merge_features: | $(INSTALLED) ## Join the NUM_SHARDS shards of model_extract_features into one .npz
	$(BIN)/shoplens merge-features --num-shards $(NUM_SHARDS)

index: $(INDEX_OUT) ## Build the search index (INDEX=auto|exact|faiss, INDEX_FAISS_THRESHOLD)
	@echo "index: $(INDEX_OUT) is up to date"
$(INDEX_OUT): $(EMBEDDINGS_OUT) .make/index.args src/shoplens/search/index.py | $(INSTALLED)
	$(BIN)/shoplens build-index $(ARGS_index)

search: $(INDEX_OUT) ## Search by IMAGE=photo, QUERY="text" or ITEM=id (K, FILTERS=gender=Men,..., CATEGORY, GRID=png)
	@$(BIN)/shoplens search $(strip $(SEARCH_ARGS))

evaluate_search: $(SEARCH_METRICS_OUT) ## Image search quality: precision@k of test products against train products
	@$(BIN)/shoplens evaluate-search --report
$(SEARCH_METRICS_OUT): $(INDEX_OUT)
	$(BIN)/shoplens evaluate-search > /dev/null

tensorboard: $(INSTALLED) ## TensorBoard on logs/
	$(BIN)/tensorboard --logdir logs

serve: $(INSTALLED) ## The web gallery and its JSON API on http://HOST:PORT (waitress)
	$(BIN)/shoplens serve --host $(HOST) --port $(PORT) --threads $(SERVE_THREADS) --page-size $(PAGE_SIZE)

benchmark: benchmark-data benchmark-models benchmark-search benchmark-serve benchmark-scale ## Run every benchmark; results in reports/benchmarks/

benchmark-data: $(INSTALLED) ## Time data + features on a 100,000-item demo catalog
	$(BIN)/python benchmarks/data.py

benchmark-models: $(INSTALLED) ## Train and evaluate every model on the fashion catalog
	$(BIN)/python benchmarks/models.py

benchmark-search: $(INSTALLED) ## Exact and FAISS search on 100k and 1M vectors, retrieval quality on the fashion catalog
	$(BIN)/python benchmarks/search.py

benchmark-serve: $(INSTALLED) ## Load-test the gallery API (20 clients, 30 s per endpoint) on a demo project
	$(BIN)/python benchmarks/serve.py

benchmark-scale: $(INSTALLED) ## The whole pipeline on a 100,000-item demo catalog: time and memory per stage
	$(BIN)/python benchmarks/scale.py

docs: $(INSTALLED) ## Build the documentation into docs/_build/html (warnings are errors)
	rm -rf docs/_autosummary
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

lint: $(INSTALLED) ## Check the code style
	$(BIN)/ruff check src tests benchmarks

clean: ## Remove generated data, stamps and caches (keeps .venv and data/raw)
	find data/interim data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .make .pytest_cache .ruff_cache docs/_build docs/_autosummary
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
