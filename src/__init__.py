"""Landmark Tagger: recognise the landmark in a photo and tag the photo with its place.

The package is laid out by stage; a stage imports only the stages above it in this list:

    src.data        photos, class folders and splits, loaders, preprocessing presets, download, landmark facts
    src.models      the backbone registry (ImageNet trunks) and MyModel, the CNN from scratch
    src.export      the exported file: a model with its preprocessing, class names and report inside
    src.evaluation  metrics, open set ("no landmark"), calibration, figures; scores exported files
    src.training    recipes, the training loop, cached activations, fine-tuning, cross-validation
    src.serving     recognize photos, the app, the HTTP service, the batch tagger, photo metadata
    src.cli         one command line over all of them: `python -m src --help`

The course's module names (`src.data`, `src.helpers`, `src.model`, `src.optimization`, `src.train`,
`src.predictor`, `src.transfer`) remain as thin re-exports of the same functions.
"""
