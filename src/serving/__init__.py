"""Stage 6, serving: recognise photos (app, HTTP service, batch tagger) and write photo metadata.

One sub-package per part; a part imports only the parts above it in this list (and earlier stages):

    metadata    EXIF/XMP reading and writing, atomic file replacement (knows nothing of models)
    gallery     taught landmarks: the store, its index, input validation, reference photos
    recognizer  Recognizer (the one decision rule), the model's runtime, the bf16 guard, maps
    tagger      the batch tagger `python -m src tag` (local and Ray engines); the gallery's command
                line (gallery.gallery_cli) sits at this level too: it embeds photos with the Recognizer
    web         the Voila app, the FastAPI service and its gallery endpoints, upload checks, load test
"""
