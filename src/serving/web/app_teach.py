"""The app's "Teach a new landmark" panel: a name, a position and a few photos; from then on uploads of
that landmark are recognised (the Recognizer picks the changed gallery up on the next photo). The position
is optional: a landmark taught without one is named on its photos but never placed."""

from __future__ import annotations

import html
import logging
from typing import Any, Callable, Optional

import ipywidgets as widgets

from src.serving.gallery.gallery import GalleryError, enrol
from src.serving.recognizer.lookalike import known_lookalike
from src.serving.recognizer.recognize import Recognizer
from src.serving.gallery.validation import landmark_fields, parse_number

log = logging.getLogger(__name__)

_STYLE = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 0.95em;"


def plural(count: int, noun: str) -> str:
    """"1 photo", "5 photos" (regular nouns): the app's counts, never "photo(s)"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def optional_position(latitude: str, longitude: str) -> tuple[Optional[float], Optional[float]]:
    """The form's two text fields -> (latitude, longitude), (None, None) when both are empty: a position is
    optional, but half of one is a mistake (GalleryError). The store checks the range."""
    lat, lon = latitude.strip(), longitude.strip()
    if not lat and not lon:
        return None, None
    if not lat or not lon:
        raise GalleryError("give both latitude and longitude, or leave both empty (named, never placed)")
    return parse_number(lat, "latitude"), parse_number(lon, "longitude")


def uploaded_files(value: Any) -> list[dict]:
    """FileUpload.value (ipywidgets 8: a tuple of dicts) as a list of dicts; tolerates a dict of dicts."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7 style: {name: {...}}
        return [dict(item, name=item.get("name") or key) for key, item in value.items()]
    return [dict(item) for item in value]


class TeachPanel:
    """Widgets and the handler; `self.widget` is the collapsible panel."""

    def __init__(self, recognizer: Recognizer, on_taught: Optional[Callable[[], None]] = None):
        """on_taught: called after a landmark was learned (the app updates its counts and map)."""
        self.recognizer = recognizer
        self.on_taught = on_taught
        self.name = widgets.Text(description="Name", placeholder="Sydney Opera House")
        # Empty, not 0: a position left at 0, 0 would place the landmark in the Gulf of Guinea.
        self.latitude = widgets.Text(description="Latitude", placeholder="optional, e.g. -33.8568")
        self.longitude = widgets.Text(description="Longitude", placeholder="optional, e.g. 151.2153")
        self.country = widgets.Text(description="Country")
        self.city = widgets.Text(description="City")
        self.tags = widgets.Text(description="Tags", placeholder="#SydneyOperaHouse #Sydney")
        self.photos = widgets.FileUpload(accept="image/*", multiple=True, description="Photos")
        self.replace = widgets.Checkbox(value=False, description="Replace it if I was taught this name before", indent=False)
        self.button = widgets.Button(description="Teach it", button_style="success", icon="plus")
        self.status = widgets.HTML()
        self.button.on_click(lambda _: self.teach())
        if not recognizer.can_embed or recognizer.gallery_dir is None:
            self.button.disabled = True
            self._say("This model cannot learn new landmarks: it was exported before embeddings existed. Re-export it to use this panel.")
        wrap = widgets.Layout(flex_flow="row wrap")  # side by side on a wide screen, stacked on a phone
        box = widgets.VBox([self.name, widgets.HBox([self.latitude, self.longitude], layout=wrap),
                            widgets.HBox([self.country, self.city], layout=wrap), self.tags, self.replace,
                            widgets.HBox([self.photos, self.button], layout=wrap), self.status])
        self.widget = widgets.Accordion(children=[box], selected_index=None)
        self.widget.set_title(0, "Teach a new landmark")

    def _say(self, text: str, warning: Optional[str] = None) -> None:
        note = f'<div class="lt-teach-warning" style="color:#e65100; margin-top:4px;"><b>Note:</b> {html.escape(warning)}</div>' if warning else ""
        self.status.value = f'<div style="{_STYLE}">{html.escape(text)}{note}</div>'

    def _clear(self) -> None:
        """Empty the form after a landmark was learned, so the next one starts from blank fields."""
        self.name.value = self.country.value = self.city.value = self.tags.value = ""
        self.latitude.value = self.longitude.value = ""
        self.replace.value = False
        self.photos.value = ()

    def teach(self) -> bool:
        """Enrol the landmark from the uploaded photos; says what happened in `self.status`."""
        files = uploaded_files(self.photos.value)
        if not files:
            self._say("Add a few photos of the landmark first (5 or more work best).")
            return False
        contents = [bytes(item.get("content") or b"") for item in files]
        try:  # decoded and embedded before the gallery is locked (`enrol`)
            latitude, longitude = optional_position(self.latitude.value, self.longitude.value)
            name = landmark_fields(self.name.value, latitude, longitude, country=self.country.value,
                                   city=self.city.value, tags=self.tags.value or None, trained=self.recognizer.class_names).name
            self.recognizer.refresh_gallery()
            if name in self.recognizer.gallery_names and not self.replace.value:  # the store would refuse it in command-line words
                self._say(f"I was already taught {name}. Tick \"{self.replace.description}\" to teach it again from these photos, "
                          "or choose another name.")
                return False
            warning = known_lookalike(self.recognizer, contents, name)
            report = enrol(
                self.recognizer.gallery_dir, self.name.value, contents,
                self.recognizer.embed, self.recognizer.model_id, latitude=latitude,
                longitude=longitude, country=self.country.value, city=self.city.value,
                tags=self.tags.value or None, trained=self.recognizer.class_names, replace=self.replace.value,
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
        unplaced = "" if report.landmark.info.has_coordinates else " Without a position it is named, never placed."
        self._say(f"Learned {report.landmark.name} from {plural(len(report.landmark.photos), 'photo')}: "
                  f"upload a photo of it to try.{unplaced}{skipped}", warning)
        self._clear()
        if self.on_taught is not None:
            self.on_taught()
        return True
