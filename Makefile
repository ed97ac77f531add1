# Two commands for users: `make app` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= checkpoints/transfer_exported.pt
PORT ?= 8866

$(BIN)/activate: requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

.PHONY: venv test app service bench evaluate train-scratch train-transfer crossval
venv: $(BIN)/activate

test: venv
	$(BIN)/python -m pytest -q

# Voila serves app.ipynb; uploads over ~10 MB need the websocket message limit raised.
app: venv
	@echo "Serving the app at http://localhost:$(PORT)/  (model: $(MODEL))"
	LANDMARK_MODEL=$(MODEL) $(BIN)/voila app.ipynb --port=$(PORT) --no-browser \
		--Voila.tornado_settings="{'websocket_max_message_size': 104857600}"

service: venv
	LANDMARK_MODEL=$(MODEL) $(BIN)/uvicorn src.serving.service:app --host 127.0.0.1 --port 8000

bench: venv
	$(BIN)/python -m src.bench

# Both checkpoints on indian_monuments' test photos: tables printed, each model's confusion matrix,
# reliability diagram and per-class F1 in static_images/ (the README shows them), results/evaluation.json
evaluate: venv
	$(BIN)/python -m src.evaluation.evaluate checkpoints/transfer_exported.pt checkpoints/scratch_exported.pt \
		--data ../shared/indian_monuments/test --figures static_images --report results/evaluation.json

train-scratch: venv
	$(BIN)/python -m src.training.scratch --data ../shared/indian_monuments --minutes 58

# A named transfer recipe (src.transfer_train.RECIPES: default, fast) on indian_monuments; OPTIONS
# change its settings (given last, they win). The default exports checkpoints/transfer_exported.pt,
# the model the app loads; another recipe exports checkpoints/transfer_<recipe>_exported.pt.
#   make train-transfer RECIPE=fast && make app MODEL=checkpoints/transfer_fast_exported.pt
RECIPE ?= default
OPTIONS ?=
RECIPE_SUFFIX = $(if $(filter-out default,$(RECIPE)),_$(RECIPE))
train-transfer: venv
	$(BIN)/python -m src.training.transfer --recipe $(RECIPE) --data ../shared/indian_monuments --no-landmark ../shared/no_landmark \
		--export checkpoints/transfer$(RECIPE_SUFFIX)_exported.pt --report results/transfer_lite0$(RECIPE_SUFFIX).json $(OPTIONS)

# 5-fold cross-validation of a recipe over the training photos (chooses settings; the test split is
# never opened). Another choice: make crossval RECIPE=fast OPTIONS="--views 4" CROSSVAL_REPORT=results/crossval_fast_views4.json
CROSSVAL_REPORT ?= results/crossval_lite0_$(RECIPE).json
crossval: venv
	$(BIN)/python -m src.training.crossval --recipe $(RECIPE) --data ../shared/indian_monuments --no-landmark ../shared/no_landmark \
		--report $(CROSSVAL_REPORT) $(OPTIONS)
