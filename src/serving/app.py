"""The photo-tagging app (served by Voila from `app.ipynb`): upload photos -> top-5 landmarks,
location and suggested tags, one card per photo.

All widget logic lives here so it can be unit-tested without a browser; the notebook only calls
`build_app()`. Every answer comes from `Recognizer.recognize_many`, like the service and the tagger.
"""

from __future__ import annotations

import html
import io
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import ipywidgets as widgets

from src.data.images import BadImageError, load_rgb
from src.serving.app_teach import TeachPanel, uploaded_files
from src.serving.maps import (
    figure_png,
    known_landmarks,
    osm_embed_html,
    plot_known_landmarks,
)
from src.serving.recognize import Recognition, Recognizer, default_model_path

__all__ = ["build_app", "render_result_html", "thumbnail_bytes", "iter_widgets", "LandmarkApp", "ACCEPT", "TOP_K", "THUMB_SIZE", "MAX_CARDS"]

log = logging.getLogger(__name__)

ACCEPT = "image/*,.heic,.heif"
TOP_K = 5
THUMB_SIZE = 256
MAX_CARDS = 30  # older cards are dropped so a long session stays responsive

_FONT = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; line-height: 1.4; color: #222;"
_MUTED = "color: #666; font-size: 0.9em;"
_BAR_COLOUR = {"landmark": "#2e7d32", "unknown": "#9e9e9e"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bars(recognition: Recognition) -> str:
    """The top-k guesses as horizontal bars (plain HTML/CSS: instant to render, no plotting)."""
    colour = _BAR_COLOUR.get(recognition.status, "#9e9e9e")
    rows = []
    for rank, guess in enumerate(recognition.top):
        percent = max(0.0, min(100.0, guess.probability * 100))
        bar = colour if rank == 0 else "#90a4ae"
        rows.append(
            '<div class="lt-guess" style="display:flex; align-items:center; gap:8px; margin:2px 0;">'
            f'<span style="flex:0 0 190px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap;" '
            f'title="{_e(guess.class_name)}">{_e(guess.info.name)}</span>'
            '<span style="flex:1 1 auto; background:#eceff1; border-radius:3px; height:12px; min-width:80px;">'
            f'<span style="display:block; width:{percent:.1f}%; height:12px; background:{bar}; border-radius:3px;"></span>'
            "</span>"
            f'<span class="lt-prob" style="flex:0 0 56px; text-align:right; font-variant-numeric:tabular-nums;">'
            f"{percent:.1f}%</span>"
            "</div>"
        )
    return "".join(rows)


def _location(recognition: Recognition) -> str:
    info = recognition.top[0].info  # its name is the card's heading
    parts = []
    if info.location:
        parts.append(f"<b>Where:</b> {_e(info.location)}")
    if info.has_coordinates:
        parts.append(f"Latitude {info.latitude:.4f}, longitude {info.longitude:.4f}")
        parts.append(
            f'<a href="{_e(info.map_url)}" target="_blank" rel="noopener noreferrer" '
            'style="color:#1565c0;">Open in a map &#8599;</a>'
        )
    if not parts:
        parts.append(f'<span style="{_MUTED}">No location is known for this landmark.</span>')
    # the small map needs the internet (OpenStreetMap tiles); the link above works as text without it
    small_map = f'<div class="lt-map" style="margin-top:6px;">{osm_embed_html(info, height=200)}</div>' if info.has_coordinates else ""
    return '<div class="lt-location" style="margin:6px 0;">' + "<br>".join(parts) + small_map + "</div>"


def _tags(recognition: Recognition) -> str:
    hashtags = recognition.top[0].info.hashtags
    if not hashtags:
        return ""
    text = " ".join(_e(tag) for tag in hashtags)
    return (
        '<div class="lt-tags" style="margin:6px 0;">Suggested tags: '
        f'<code style="background:#f1f8e9; padding:1px 4px; border-radius:3px;">{text}</code></div>'
    )


def render_result_html(name: str, recognition: Recognition) -> str:
    """HTML for the text part of one photo's card (file name, verdict, location, tags, top-k bars).

    Pure (no widgets, no model); every piece of user or metadata text is HTML-escaped.
    """
    header = f'<div class="lt-file" style="{_MUTED}">{_e(name)}</div>'
    if recognition.status == "error" or not recognition.top:
        message = recognition.message or "This file could not be used as a photo."
        body = (
            '<div class="lt-error" style="color:#b71c1c; font-weight:600; margin:4px 0;">'
            "Sorry, I could not use this file.</div>"
            f'<div style="margin:4px 0;">{_e(message)}</div>'
            f'<div style="{_MUTED}">Please upload a photo (JPEG, PNG, WebP or HEIC).</div>'
        )
    elif recognition.status == "unknown":
        body = (
            '<div class="lt-unknown" style="font-weight:600; color:#e65100; margin:4px 0;">'
            f"{_e(recognition.message)}</div>"
            f'<div style="{_MUTED} margin-top:6px;">Closest guesses:</div>' + _bars(recognition)
        )
    else:
        best = recognition.top[0]
        body = (
            '<div class="lt-landmark" style="font-size:1.25em; font-weight:600; margin:4px 0;">'
            f"{_e(best.info.name)} "
            f'<span style="color:#2e7d32;">{best.probability:.0%}</span></div>'
            + _location(recognition)
            + _tags(recognition)
            + f'<div style="{_MUTED} margin-top:6px;">Top {len(recognition.top)}:</div>'
            + _bars(recognition)
        )
    return f'<div class="lt-result" style="{_FONT}">{header}{body}</div>'


def thumbnail_bytes(content: bytes, size: int = THUMB_SIZE) -> Optional[bytes]:
    """An upright JPEG thumbnail (longest side <= size) of an uploaded photo, or None if unreadable."""
    try:
        image = load_rgb(content, short_side=size)
    except BadImageError:
        return None
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _message_html(text: str, colour: str = "#b71c1c") -> str:
    return f'<div style="{_FONT} color:{colour}; font-weight:600; margin:8px 0;">{_e(text)}</div>'


def _card(name: str, content: bytes, recognition: Recognition) -> widgets.Widget:
    text = widgets.HTML(render_result_html(name, recognition), layout=widgets.Layout(flex="1 1 auto", min_width="280px"))
    children: list[widgets.Widget] = [text]
    thumb = thumbnail_bytes(content) if recognition.status != "error" else None
    if thumb is not None:
        image = widgets.Image(value=thumb, format="jpeg", layout=widgets.Layout(max_width=f"{THUMB_SIZE}px", height="auto", flex="0 0 auto"))
        children.insert(0, image)
    border = {"landmark": "#a5d6a7", "unknown": "#ffcc80"}.get(recognition.status, "#ef9a9a")
    return widgets.HBox(
        children,
        layout=widgets.Layout(
            border=f"1px solid {border}", padding="10px", margin="6px 0", grid_gap="16px", align_items="flex-start", width="100%"
        ),
    )


class LandmarkApp:
    """The widgets and the upload handler; `build_app()` returns `self.widget`."""

    def __init__(self, recognizer: Recognizer, max_cards: int = MAX_CARDS):
        self.recognizer = recognizer
        self.max_cards = max_cards
        n = len(recognizer.landmark_indices)
        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=True, description="Upload photos", button_style="primary", icon="upload")
        self.status = widgets.HTML(f'<div style="{_FONT} {_MUTED}">No photo yet. I know {n} landmarks.</div>')
        self.results = widgets.VBox([], layout=widgets.Layout(width="100%"))
        self.upload.observe(self._on_upload, names="value")
        self._busy = False
        self.widget = widgets.VBox(
            [_header(f"Upload photos: for each one I guess which of the {n} landmarks it shows, where that is, and suggest tags."),
             widgets.HBox([self.upload, self.status], layout=widgets.Layout(align_items="center", grid_gap="12px")),
             known_landmarks_panel(recognizer),
             TeachPanel(recognizer).widget,  # a landmark taught here is recognised from the next upload
             self.results],
            layout=widgets.Layout(max_width="900px", padding="8px"),
        )

    def _on_upload(self, change: dict) -> None:
        files = uploaded_files(change.get("new"))
        if not files or self._busy:
            return
        self._busy = True
        try:
            self.process(files)
        except Exception as error:  # never a traceback in the page: a message, and the app keeps working
            log.warning("upload handler failed: %r", error)  # no traceback: kernel stderr can reach the page
            log.debug("upload handler failed", exc_info=True)
            self.status.value = _message_html(
                f"Something went wrong while processing the upload ({type(error).__name__}). Please try again or try another photo."
            )
        finally:
            try:
                self.upload.value = ()  # so the same file can be uploaded again
            except Exception as error:  # pragma: no cover - defensive
                log.warning("could not reset the upload widget: %r", error)
            self._busy = False

    def process(self, files: Sequence[dict]) -> list[Recognition]:
        """Recognize uploaded files (dicts with name and content) in one batch and show their cards."""
        count = len(files)
        self.status.value = f'<div style="{_FONT} {_MUTED}">Looking at {count} photo{"s" * (count != 1)}&#8230;</div>'
        start = time.perf_counter()
        contents = [bytes(item.get("content") or b"") for item in files]
        recognitions = self.recognizer.recognize_many(contents, top_k=TOP_K)
        cards = []
        for item, content, recognition in zip(files, contents, recognitions):
            name = str(item.get("name") or "photo")
            try:
                cards.append(_card(name, content, recognition))
            except Exception as error:  # one odd file must not hide the others' results
                log.warning("could not show %s: %r", name, error)
                cards.append(widgets.HTML(render_result_html(name, Recognition(status="error", message=f"Could not show this photo ({type(error).__name__})."))))
        self.results.children = tuple(cards + list(self.results.children))[: self.max_cards]
        seconds = time.perf_counter() - start
        found = sum(r.status == "landmark" for r in recognitions)
        self.status.value = (
            f'<div style="{_FONT} {_MUTED}">{count} photo{"s" * (count != 1)}, {found} landmark{"s" * (found != 1)} '
            f"recognized ({seconds:.1f} s).</div>"
        )
        return recognitions


def known_landmarks_panel(recognizer: Recognizer) -> widgets.Accordion:
    """A folded "Landmarks I know" panel: the model's landmarks on a world map (drawn when opened)."""
    holder = widgets.VBox([])
    panel = widgets.Accordion(children=[holder], selected_index=None)
    panel.set_title(0, f"Landmarks I know ({len(recognizer.landmark_indices)})")

    def draw(change: dict) -> None:
        if change.get("new") == 0 and not holder.children:
            names = [recognizer.class_names[i] for i in recognizer.landmark_indices]
            holder.children = [widgets.Image(value=figure_png(plot_known_landmarks(known_landmarks(names)), dpi=80), format="png",
                                             layout=widgets.Layout(max_width="100%"))]

    panel.observe(draw, names="selected_index")
    return panel


def _header(explanation: str) -> widgets.HTML:
    return widgets.HTML(
        f'<div style="{_FONT}"><h2 style="margin:0 0 4px 0;">Where was this photo taken?</h2>'
        f'<div style="{_MUTED} margin-bottom:8px;">{_e(explanation)}</div></div>'
    )


def build_app(recognizer: Optional[Recognizer] = None, model_path: Optional[str | Path] = None) -> widgets.Widget:
    """The app's root widget. Without a recognizer it loads `model_path` (default: $LANDMARK_MODEL or
    checkpoints/transfer_exported.pt); a missing or broken model gives a clear message, not a crash."""
    if recognizer is None:
        path = Path(model_path) if model_path else default_model_path()
        try:
            recognizer = Recognizer(path)
        except FileNotFoundError as error:
            return widgets.VBox([
                _header("Upload a photo to find which landmark it shows, where it is, and tags for it."),
                widgets.HTML(_message_html(f"No trained model yet: {error}. Then reload this page.")),
            ])
        except Exception as error:
            log.warning("could not load the model %s: %r", path, error)
            return widgets.VBox([
                _header("Upload a photo to find which landmark it shows, where it is, and tags for it."),
                widgets.HTML(_message_html(f"Could not load the model {path} ({type(error).__name__}: {error}). "
                                           "Re-export it or set LANDMARK_MODEL to another model, then reload this page.")),
            ])
    return LandmarkApp(recognizer).widget


def iter_widgets(root: widgets.Widget) -> Iterable[widgets.Widget]:
    """Every widget under root (depth first), for tests and notebooks."""
    yield root
    for child in getattr(root, "children", ()) or ():
        yield from iter_widgets(child)
