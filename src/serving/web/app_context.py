"""The app's photos uploaded together are one library (`src.serving.locate`): each card says what placed its
photo (the photo's own GPS, the photos around it, its landmark) with the radius, or why it is not placed (the
evidence conflicts, its camera's clock is not tied). The same decision as `python -m src tag`."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence

from src.serving.locate.library import ContextConfig, LibraryPhoto, Located, library_photo, locate_library
from src.serving.locate.photo_meta import read_photo_meta
from src.serving.recognizer.recognition import Recognition

__all__ = ["locate_uploads", "context_html", "as_shown"]

_SOURCE_WORDS = {
    "time": "the photos taken shortly before and after it",
    "track": "a GPS track",
    "landmark": "its landmark",
    "visual": "a GPS photo that looks like it",
}
_MUTED = "color: #666; font-size: 0.9em;"


def locate_uploads(names: Sequence[str], contents: Sequence[bytes], recognitions: Sequence[Recognition],
                   config: ContextConfig = ContextConfig()) -> list[Located]:
    """One decision per uploaded photo from the whole upload (its landmark, the others' GPS and times)."""
    photos = []
    for name, content, recognition in zip(names, contents, recognitions):
        if recognition.status == "error":
            photos.append(LibraryPhoto(name, None))
            continue
        meta = read_photo_meta(content, name)
        landmark = recognition.position  # only where the recognizer placed it
        photos.append(library_photo(name, meta, landmark, recognition.top[0].info.name if landmark else ""))
    return locate_library(photos, config)


def as_shown(recognition: Recognition, located: Located) -> Recognition:
    """A landmark placement the other photos contradict is shown as a guess: no position, map or tags."""
    if located.decision.source == "conflict" and recognition.placed:
        return dataclasses.replace(recognition, placed=False)
    return recognition


def context_html(located: Located) -> str:
    """The card's line on what placed the photo, or why nothing did; "" where the upload says nothing more."""
    decision = located.decision
    if decision.source == "gps":
        text = (f"<b>Own GPS:</b> {decision.latitude:.5f}, {decision.longitude:.5f} (kept as it is)")
    elif decision.source == "conflict":
        text = f'<b style="color:#b71c1c;">Not placed: the evidence conflicts.</b> {html.escape(decision.message)}'
    elif decision.placed and decision.source != "landmark":
        url = f"https://www.openstreetmap.org/?mlat={decision.latitude:.5f}&mlon={decision.longitude:.5f}#map=15/{decision.latitude:.5f}/{decision.longitude:.5f}"
        text = (f"<b>Placed by {_SOURCE_WORDS.get(decision.source, decision.source)}:</b> {decision.latitude:.5f}, "
                f"{decision.longitude:.5f}, within {decision.radius_m:.0f} m "
                f'(<a href="{url}" target="_blank" rel="noopener noreferrer" style="color:#1565c0;">open in a map &#8599;</a>)'
                f'<br><span style="{_MUTED}">{html.escape(decision.message)}</span>')
    elif decision.placed:  # its landmark placed it; say so only where the other photos agree
        if "agrees with" not in decision.message:
            return ""
        text = f"<b>Placed by its landmark</b>, within {decision.radius_m:.0f} m; {html.escape(decision.message.split('; ', 1)[1])}"
    elif decision.message:
        text = f'<span style="{_MUTED}">{html.escape(decision.message)}</span>'
    else:
        return ""
    return f'<div class="lt-context" style="margin:6px 0; padding:4px 6px; background:#f5f5f5; border-radius:4px;">{text}</div>'
