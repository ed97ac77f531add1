# Two commands for users: `make app` and `make test`. Both create .venv on first use.
# The others run `python -m src <command>` (see `python -m src --help`) on the data you name:
#   make train DATA="../shared/indian_monuments ../shared/world_landmarks" NO_LANDMARK=../shared/no_landmark
# Without DATA, commands use the course data set (LANDMARK_DATA, ./landmark_images, or downloaded).
# The Python the pinned requirements are installed and tested with; `make PYTHON=python3.12 test` tries another.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= checkpoints/transfer_exported.pt
PORT ?= 8866
DATA ?=
NO_LANDMARK ?=
RECIPE ?= default
OPTIONS ?=

DATA_OPTION = $(if $(strip $(DATA)),--data $(DATA))
NO_LANDMARK_OPTION = $(if $(strip $(NO_LANDMARK)),--no-landmark $(NO_LANDMARK))

$(BIN)/activate: requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

.PHONY: venv test test-all app service bench evaluate train crossval experiments
venv: $(BIN)/activate

# The fast suite for the edit-test loop; test-all adds the slow tests (pytest.ini's `slow` marker:
# training runs, cross-validation, Ray, browser). pytest's own exit status is make's: 5 (no tests) fails.
test: venv
	$(BIN)/python -m pytest -q -m "not slow"

test-all: venv
	$(BIN)/python -m pytest -q

# Voila serves app.ipynb with the settings in voila.json (read from this folder): pre-heated kernels (the
# model already loaded when a visitor comes), kernels culled a minute after their page is gone, a cap on
# live kernels (src/serving/web/app_kernels.py, a "busy" page past it), the websocket message limit for
# large uploads (a number there: on the command line traitlets would make it a string), and the
# template in share/jupyter, which fetches nothing from the internet. src/serving/web/app_server.py
# starts it: the template on JUPYTER_PATH, the notebook trusted, Voila's start-up 3 s shorter.
# docs/serving.md: what a visitor costs, how fast.
app: venv
	@echo "Serving the app at http://localhost:$(PORT)/  (model: $(MODEL))"
	LANDMARK_MODEL=$(MODEL) $(BIN)/python -m src.serving.web.app_server --port=$(PORT) --no-browser

service: venv
	LANDMARK_MODEL=$(MODEL) $(BIN)/python -m src serve --model $(MODEL)

bench: venv
	$(BIN)/python -m src bench --out results --runs results/runs $(OPTIONS)

# A named recipe (default, accurate, scratch); OPTIONS change its fields, e.g. OPTIONS="--train-views 3".
train: venv
	$(BIN)/python -m src train --recipe $(RECIPE) $(DATA_OPTION) $(NO_LANDMARK_OPTION) $(OPTIONS)

# Cross-validation over the training photos (chooses settings; test/ is never read).
crossval: venv
	$(BIN)/python -m src crossval --recipe $(RECIPE) $(DATA_OPTION) $(NO_LANDMARK_OPTION) $(OPTIONS)

# MODELS on every DATA root's test photos (per root, then together), the held-out object photos of
# NO_LANDMARK and generated non-photos: tables, run record, each model's figures in static_images/.
MODELS ?= $(MODEL)
evaluate: venv
	$(if $(strip $(DATA)),,$(error make evaluate needs DATA=<roots with test/>, e.g. DATA="../shared/indian_monuments ../shared/world_landmarks"))
	$(BIN)/python -m src evaluate $(MODELS) --data $(DATA) $(NO_LANDMARK_OPTION) --generated 240 --figures static_images $(OPTIONS)

# The tables of docs/experiments.md, from the run records in results/runs/.
experiments: venv
	$(BIN)/python -m src.evaluation.experiments
