"""Photo metadata: reading and writing a photo's place without touching its pixels. `exif` reads and
writes the GPS position, caption and keywords in the EXIF block (`exif_blocks` finds that block in a
JPEG or WebP file and patches it tag by tag, maker notes kept byte for byte); `xmp` builds, parses and
embeds the XMP packet (or a ``photo.jpg.xmp`` sidecar) that photo managers read; `whole_file_writers`
writes TIFF/DNG (patched the same way) and PNG (exiv2); `place_values` checks coordinates, the radius,
captions and keywords before anything is written; `safe_write` replaces files atomically and removes
what a killed writer left behind. Nothing here knows about models or
landmarks' recognition: the tagger (`src.serving.tagger`) and the gallery call these modules.
"""
