"""The app's "Teach a new landmark" panel: a name, a position and a few photos; from then on uploads of
that landmark are recognised (the Recognizer picks the changed gallery up on the next photo)."""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as widgets

from src.serving.gallery import GalleryError, enrol
from src.serving.recognize import Recognizer

log = logging.getLogger(__name__)

_STYLE = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 0.95em;"


def uploaded_files(value: Any) -> list[dict]:
    """FileUpload.value (ipywidgets 8: a tuple of dicts) as a list of dicts; tolerates a dict of dicts."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7 style: {name: {...}}
        return [dict(item, name=item.get("name") or key) for key, item in value.items()]
    return [dict(item) for item in value]


class TeachPanel:
    """Widgets and the handler; `self.widget` is the collapsible panel."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer = recognizer
        self.name = widgets.Text(description="Name", placeholder="Sydney Opera House")
        self.latitude = widgets.BoundedFloatText(description="Latitude", min=-90, max=90, value=0.0, step=0.0001)
        self.longitude = widgets.BoundedFloatText(description="Longitude", min=-180, max=180, value=0.0, step=0.0001)
        self.country = widgets.Text(description="Country")
        self.city = widgets.Text(description="City")
        self.tags = widgets.Text(description="Tags", placeholder="#SydneyOperaHouse #Sydney")
        self.photos = widgets.FileUpload(accept="image/*", multiple=True, description="Photos")
        self.button = widgets.Button(description="Teach it", button_style="success", icon="plus")
        self.status = widgets.HTML()
        self.button.on_click(lambda _: self.teach())
        if not recognizer.can_embed or recognizer.gallery_dir is None:
            self.button.disabled = True
            self._say("This model cannot learn new landmarks: it was exported before embeddings existed. Re-export it to use this panel.")
        box = widgets.VBox([self.name, widgets.HBox([self.latitude, self.longitude]), widgets.HBox([self.country, self.city]),
                            self.tags, widgets.HBox([self.photos, self.button]), self.status])
        self.widget = widgets.Accordion(children=[box], selected_index=None)
        self.widget.set_title(0, "Teach a new landmark")

    def _say(self, text: str) -> None:
        self.status.value = f'<div style="{_STYLE}">{html.escape(text)}</div>'

    def teach(self) -> bool:
        """Enrol the landmark from the uploaded photos; says what happened in `self.status`."""
        files = uploaded_files(self.photos.value)
        if not files:
            self._say("Add a few photos of the landmark first (5 or more work best).")
            return False
        try:  # decoded and embedded before the gallery is locked (`enrol`)
            report = enrol(
                self.recognizer.gallery_dir, self.name.value, [bytes(item.get("content") or b"") for item in files],
                self.recognizer.embed, self.recognizer.model_id, latitude=float(self.latitude.value),
                longitude=float(self.longitude.value), country=self.country.value, city=self.city.value,
                tags=self.tags.value or None, trained=self.recognizer.class_names,
                names=[str(item.get("name") or f"photo {i + 1}") for i, item in enumerate(files)],
            )
            if report.landmark is None:
                reasons = "; ".join(f"{name}: {why}" for name, why in report.skipped[:3])
                raise GalleryError(f"none of the photos could be used ({reasons}): nothing was added")
        except GalleryError as error:
            self._say(f"Not added: {error}")
            return False
        self.recognizer.refresh_gallery()
        skipped = f" Skipped {', '.join(name for name, _ in report.skipped)}." if report.skipped else ""
        self._say(f"Learned {report.landmark.name} from {len(report.landmark.photos)} photo(s): upload a photo of it to try.{skipped}")
        self.photos.value = ()
        return True
