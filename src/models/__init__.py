"""Stage 2, models: the backbone registry (ImageNet trunks, offline weights) and MyModel."""
