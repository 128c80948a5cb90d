# shoplens: e-commerce product classification and visual search.
# `make help` lists the targets. Options are Make variables, e.g. `make data CATALOG=shop.csv SEED=7`: the
# shoplens commands remember them in params.yaml for every later target, and run a stage only when its
# options, inputs or code changed. Every default lives in src/shoplens/config.py; `make params` lists them.

.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The command of the target make was asked for (not one it runs first) also remembers options that belong to
# none of the commands it ran (`make data EPOCHS=5`), once all of them succeeded.
SHOPLENS = SHOPLENS_GOAL=$(filter $@,$(MAKECMDGOALS)) $(BIN)/shoplens

# `$(TIMED) NAME command...` runs the command, then says how long it took ("NAME: 52 s"), and fails if it did.
TIMED = bash -c '"$${@:2}"; status=$$?; echo "$$1: $$SECONDS s"; exit $$status' timed

# What this Makefile needs from the config module itself: the demo's options and folder.
-include .make/config.mk
.make/config.mk: src/shoplens/config.py
	@mkdir -p $(@D)
	@PYTHONPATH=src $(PYTHON) -m shoplens.config > $@.tmp && mv $@.tmp $@

# The names of the variables given on this command line. Make exports their values to the commands it
# runs, where they are read as they were typed: no quoting, whatever a path holds.
export SHOPLENS_GIVEN := $(strip $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $v)),$v)))

.PHONY: help demo test test-container params demo-catalog data features model_train model_predict search_models \
	model_extract_features merge_features index search evaluate_search audit notebooks serve tensorboard benchmark \
	benchmark-data benchmark-models benchmark-search benchmark-serve benchmark-scale benchmark-audit \
	benchmark-text-search benchmark-metric-learning benchmark-crops docs lint \
	clean lock

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

demo: | $(INSTALLED) ## Set up, generate the demo catalog and run the pipeline on it
	@date +%s > .make/demo-started
	@$(TIMED) model_predict $(MAKE) --no-print-directory model_predict $(DEMO_OPTIONS) CLASSMODE=multilabel MODELMODE=combined
	@echo
	@$(TIMED) evaluate_search $(MAKE) --no-print-directory evaluate_search
	@echo
	@$(TIMED) "search by photo" $(MAKE) --no-print-directory search IMAGE="$$(ls -d $(DEMO_DIR)/images/*.jpg | head -1)" \
		GRID=reports/demo/figures/search_image.png
	@echo
	@$(TIMED) "search by text" $(MAKE) --no-print-directory search QUERY="red running shoes for men" GRID=reports/demo/figures/search_text.png
	@echo
	@$(TIMED) audit $(MAKE) --no-print-directory audit
	@echo
	@$(SHOPLENS) summary
	@echo "results: data/processed/, models/, reports/demo/; options of this project: params.yaml (make params)"
	@echo "gallery: make serve, then open the address it prints"
	@echo "demo: $$(( $$(date +%s) - $$(cat .make/demo-started) )) s in all (setting up .venv not counted)"

# The test files run side by side, one process per CPU core (four at most: each holds a TensorFlow); a file's
# tests stay in one process, which makes their module fixtures once.
test: | $(INSTALLED) ## Set up and run the test suite
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile

test-container: | $(INSTALLED) ## Build the gallery's image on a Docker engine of its own and test it (root; minutes)
	$(BIN)/pytest -m container tests/test_container.py

params: | $(INSTALLED) ## Show the project's options (NAME=value sets one without running anything)
	@$(SHOPLENS) params

demo-catalog: | $(INSTALLED) ## Generate the demo catalog (DEMO_N items, DEMO_SEED) in data/raw/demo
	@$(SHOPLENS) demo-catalog

data: | $(INSTALLED) ## Validate, clean and split CATALOG into data/processed/splits
	@$(SHOPLENS) make-dataset

features: data ## Preprocess images, fit vocabulary and label encoders
	@$(SHOPLENS) build-features

model_train: features ## Train a classifier (CLASSMODE, MODELMODE, BACKBONE, WEIGHTS, ...)
	@$(SHOPLENS) train

model_predict: model_train ## Evaluate the classifier on the test split and print its report
	@$(SHOPLENS) evaluate

search_models: features ## Train the models search uses (SEARCH_IMAGE_MODEL, SEARCH_TEXT_MODEL)
	@$(SHOPLENS) train --search

model_extract_features: search_models ## Embed every item with the search image model (SHARD, NUM_SHARDS)
	@$(SHOPLENS) extract-features

merge_features: | $(INSTALLED) ## Join the NUM_SHARDS shards of model_extract_features
	@$(SHOPLENS) merge-features

index: model_extract_features ## Build the search index (INDEX=auto|exact|faiss, INDEX_FAISS_THRESHOLD)
	@$(SHOPLENS) build-index

search: index ## Search by IMAGE=photo, QUERY="text" or ITEM=id (K, FILTERS=gender=Men,..., CATEGORY, GRID=png)
	@$(SHOPLENS) search

evaluate_search: index ## Image search quality: precision@k of test products against train products
	@$(SHOPLENS) evaluate-search

audit: data ## Find products filed under a wrong category, and duplicates (AUDIT_FOLDS, AUDIT_HASH_DISTANCE)
	@$(SHOPLENS) audit

# The notebooks run from notebooks/, as Jupyter runs them there; their executed copies, outputs and all, and
# HTML pages of them go to reports/<catalog>/notebooks/ (notebooks/ keeps them clean).
NOTEBOOKS := notebooks/dataset_statistics.ipynb notebooks/visual_search.ipynb
NBCONVERT = $(BIN)/jupyter nbconvert --log-level ERROR
notebooks: index ## Run both notebooks on the project's current data, into reports/<catalog>/notebooks/
	@out="reports/$$($(BIN)/python -c 'from shoplens.data.make_dataset import load_summary as s; print(s()["catalog_name"])')/notebooks" && \
	$(NBCONVERT) --to notebook --execute "--ExecutePreprocessor.extra_arguments=['--IPKernelApp.log_level=ERROR']" \
		--output-dir "$$out" $(NOTEBOOKS) && \
	$(NBCONVERT) --to html --output-dir "$$out" $(addprefix "$$out"/,$(notdir $(NOTEBOOKS))) && \
	echo "notebooks: executed into $$out/ (.ipynb for Jupyter, .html for a browser)"

serve: index ## The web gallery and its JSON API on http://HOST:PORT (waitress)
	@$(SHOPLENS) serve

tensorboard: | $(INSTALLED) ## TensorBoard on logs/
	$(BIN)/tensorboard --logdir logs

benchmark: benchmark-data benchmark-models benchmark-search benchmark-serve benchmark-scale benchmark-audit benchmark-text-search benchmark-metric-learning benchmark-crops ## Every benchmark

benchmark-data: | $(INSTALLED) ## Time data + features on a 100,000-item demo catalog
	$(BIN)/python benchmarks/data.py

benchmark-models: | $(INSTALLED) ## Train and evaluate every model on the fashion catalog
	$(BIN)/python benchmarks/models.py

benchmark-search: | $(INSTALLED) ## Exact and FAISS search on 100k and 1M vectors, retrieval on the fashion catalog
	$(BIN)/python benchmarks/search.py

benchmark-metric-learning: | $(INSTALLED) ## Normalised softmax against softmax: seen and unseen-category retrieval, fashion catalog
	$(BIN)/python benchmarks/metric_learning.py

benchmark-serve: | $(INSTALLED) ## Load-test the gallery API (20 clients, 30 s per endpoint) on a demo project
	$(BIN)/python benchmarks/serve.py

benchmark-audit: | $(INSTALLED) ## The audit on the fashion catalog with planted label errors and duplicates
	$(BIN)/python benchmarks/audit.py

benchmark-text-search: | $(INSTALLED) ## Text search relevance (P@10, nDCG@10) on 300 attribute queries, fashion catalog
	$(BIN)/python benchmarks/text_search.py

benchmark-crops: | $(INSTALLED) ## Object-centred crops (CROP=auto) on a cluttered 1,000-item demo: box IoU, image search P@5
	$(BIN)/python benchmarks/crops.py

benchmark-scale: | $(INSTALLED) ## The whole pipeline on a 100,000-item demo catalog: time and memory per stage
	$(BIN)/python benchmarks/scale.py

docs: | $(INSTALLED) ## Build the documentation into docs/_build/html (warnings are errors)
	rm -rf docs/_autosummary
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

lint: | $(INSTALLED) ## Check the code style
	$(BIN)/ruff check src tests benchmarks

clean: ## Remove generated data, stamps and caches (keeps .venv, data/raw, models and params.yaml)
	find data/interim data/processed -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
	rm -rf .make .pytest_cache .ruff_cache docs/_build docs/_autosummary
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Every package comes pinned, hash-checked, from requirements.txt (the lock file `make lock` writes).
$(INSTALLED): requirements.txt setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# The gallery's image installs requirements-serve.txt: its packages only, at the versions of requirements.txt.
LOCK = $(BIN)/uv pip compile --universal --generate-hashes --python-version 3.11 --custom-compile-command "make lock"
lock: | $(INSTALLED) ## Resolve requirements.in (and requirements-serve.in) into requirements*.txt, pinned with hashes
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-serve.in -c requirements.txt -o requirements-serve.txt
