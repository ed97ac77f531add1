"""Moved to `src.serving.gallery.gallery_index` (issue 29). This old name stays only until
scripts/gallery_reference_rule.py (owned by another change in progress) imports the new one: delete it then."""

import sys

from src.serving.gallery import gallery_index as _moved

sys.modules[__name__] = _moved
