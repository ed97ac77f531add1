"""The landmark gallery: landmarks a user teaches from a few photos, recognised without retraining.
`gallery` is the store under $LANDMARK_HOME (enrol, edit, export, merge, thumbnails), `store_format` its
files byte by byte (the store, an export's members, caps checked before reading), `enrolment` the photos
being taught (read, decoded, embedded before the lock), `archive` importing an export, `gallery_index`
the nearest-photo search over its embeddings (numpy, faiss when large), `validation` the checks on
everything that enters it (names, positions, tags, tokens, the store on disk), `references` the model's
own reference photos that a taught landmark must beat. These sit below the recognizer, which reads
the gallery for every photo; `gallery_cli` (`python -m src gallery`) sits above it, since it embeds the
photos it enrols with `src.serving.recognizer` (imported inside its functions). The HTTP endpoints are
`src.serving.web.gallery_api`.
"""
