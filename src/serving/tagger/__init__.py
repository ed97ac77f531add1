"""The batch tagger (`python -m src tag`): photos and folders in, one report row per photo out, and the
recognised landmark's place written into the photos (a copy, in place, or an XMP sidecar) where asked.
`cli` is the command line and chooses the engine: `tag` runs in this process, `ray_tag` on Ray Data
(imported only then); both tag each photo with the steps of `photo_pipeline` (bounded read and decode,
the report row, the write). `photo_files` finds the photos, `tag_report` is the report (CSV/JSON),
`tag_writer` writes one photo's place through `src.serving.metadata`. Above the recognizer: every answer
is `src.serving.recognizer`'s; nothing below imports from here.
"""
