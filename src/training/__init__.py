"""Stage 5, training: recipes, the training loop, cached activations, fine-tuning, cross-validation."""
