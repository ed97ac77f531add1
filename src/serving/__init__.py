"""Stage 6, serving: recognise photos (app, HTTP service, batch tagger) and write photo metadata."""
