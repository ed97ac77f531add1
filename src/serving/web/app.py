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
from src.data.landmarks import LandmarkInfo
from src.evaluation.openset_rule import too_small
from src.serving.web.app_context import as_shown, context_html, locate_uploads
from src.serving.web.app_teach import TeachPanel, plural, uploaded_files
from src.serving.recognizer.maps import (
    answer_map_html,
    figure_png,
    names_by_country,
    plot_known_landmarks,
)
from src.serving.recognizer.recognize import Recognition, Recognizer, default_model_path

__all__ = ["build_app", "render_result_html", "thumbnail_bytes", "iter_widgets", "LandmarkApp", "ACCEPT", "TOP_K", "THUMB_SIZE", "MAX_CARDS"]

log = logging.getLogger(__name__)

ACCEPT = "image/*,.heic,.heif"
TOP_K = 5
THUMB_SIZE = 256
MAX_CARDS = 30  # older cards are dropped so a long session stays responsive

_FONT = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; line-height: 1.4; color: #222;"
_MUTED = "color: #666; font-size: 0.9em;"
# By `Recognition.verdict`: green is for a placed photo only; a guess is blue-grey, like the other candidates.
_BAR_COLOUR = {"placed": "#2e7d32", "guess": "#78909c", "unknown": "#9e9e9e"}
_BORDER = {"placed": "#a5d6a7", "guess": "#b0bec5", "unknown": "#ffcc80"}
MIN_SHOWN = 0.005  # a guess below this would read "0.0%": not shown; an answer with none says "No landmark"
UPLOAD_LABEL = "Upload photos"
# The page's style sheet (one <style> in an HTML widget). ipywidgets writes "Upload photos (N)" on the
# button, N the files still held: the handler empties it after every upload, so it would always say
# (0); the label is drawn by CSS instead. Cards wrap (photo above the text) on a phone's narrow screen.
_STYLE_SHEET = f"""<style>
.lt-upload {{ font-size: 0 !important; width: auto !important; padding: 0 14px; }}
.lt-upload i {{ font-size: var(--jp-widgets-font-size, 13px); margin-right: 6px; }}
.lt-upload::after {{ content: "{UPLOAD_LABEL}"; font-size: var(--jp-widgets-font-size, 13px); }}
.lt-card {{ box-sizing: border-box; }}
.lt-card .lt-text {{ min-width: 0; }}
.lt-card img.widget-image {{ max-width: 100%; }}
.lt-names {{ columns: 15em; column-gap: 2em; font-size: 0.9em; line-height: 1.35; margin: 4px 0; }}
.lt-names div {{ break-inside: avoid; }}
</style>"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _percent(probability: float) -> str:
    """"99.6%": one rounding for the heading and the bars, so they never disagree (100% beside 99.6%)."""
    return f"{max(0.0, min(100.0, probability * 100)):.1f}%"


def _bars(recognition: Recognition) -> str:
    """The top-k guesses as horizontal bars (plain HTML/CSS: instant to render, no plotting)."""
    colour = _BAR_COLOUR.get(recognition.verdict, "#9e9e9e")
    rows = []
    for rank, guess in enumerate(_shown(recognition)):
        percent = max(0.0, min(100.0, guess.probability * 100))
        bar = colour if rank == 0 else "#90a4ae"
        rows.append(  # the name column gives way first, so that bar and percentage fit a phone's width
            '<div class="lt-guess" style="display:flex; align-items:center; gap:8px; margin:2px 0;">'
            f'<span style="flex:0 1 190px; min-width:0; overflow:hidden; text-overflow:ellipsis; white-space:nowrap;" '
            f'title="{_e(guess.class_name)}">{_e(guess.info.name)}</span>'
            '<span style="flex:1 1 auto; background:#eceff1; border-radius:3px; height:12px; min-width:40px;">'
            f'<span style="display:block; width:{percent:.1f}%; height:12px; background:{bar}; border-radius:3px;"></span>'
            "</span>"
            f'<span class="lt-prob" style="flex:0 0 52px; text-align:right; font-variant-numeric:tabular-nums;">'
            f"{_percent(guess.probability)}</span>"
            "</div>"
        )
    return "".join(rows)


def _shown(recognition: Recognition) -> list:
    """The guesses worth a bar: those that would not read 0.0 %."""
    return [guess for guess in recognition.top if guess.probability >= MIN_SHOWN]


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
    # drawn here, nothing fetched from outside (`answer_map_html`); the link above opens the streets if clicked
    small_map = f'<div class="lt-map" style="margin-top:6px; position:relative;">{answer_map_html(info, height=200)}</div>' if info.has_coordinates else ""
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
    elif recognition.status == "unknown" and not _shown(recognition) and not (recognition.size and too_small(recognition.size)):
        # every guess would read 0.0 % (a pizza, a sky): no "best guess Golden Temple at 0%", no empty bars
        body = (
            '<div class="lt-unknown" style="font-weight:600; color:#e65100; margin:4px 0;">No landmark</div>'
            f'<div style="{_MUTED}">This photo does not look like any of the landmarks I know.</div>'
        )
    elif recognition.status == "unknown":
        body = (
            '<div class="lt-unknown" style="font-weight:600; color:#e65100; margin:4px 0;">'
            f"{_e(recognition.message)}</div>"
            + (f'<div style="{_MUTED} margin-top:6px;">Closest guesses:</div>' + _bars(recognition) if _shown(recognition) else "")
        )
    elif not recognition.placed:
        # a guess never carries a place (no position, map or tags) nor a big percentage: the bars say how sure
        best = recognition.top[0]
        why = (f"{_e(best.info.name)} &#8212; named, never placed: no position is known for it" if not best.info.has_coordinates
               else f"Looks like {_e(best.info.name)} &#8212; not sure enough to place it")
        body = (
            f'<div class="lt-looks-like" style="font-size:1.05em; font-weight:600; color:#455a64; margin:4px 0;">{why}</div>'
            f'<div style="{_MUTED}">{_e(recognition.message)} No position, map or tags.</div>'
            + f'<div style="{_MUTED} margin-top:6px;">Top {len(_shown(recognition))}:</div>'
            + _bars(recognition)
        )
    else:
        best = recognition.top[0]
        body = (
            '<div class="lt-landmark" style="font-size:1.25em; font-weight:600; margin:4px 0;">'
            f"{_e(best.info.name)} "
            f'<span style="color:#2e7d32;">{_percent(best.probability)}</span></div>'
            + _location(recognition)
            + _tags(recognition)
            + f'<div style="{_MUTED} margin-top:6px;">Top {len(_shown(recognition))}:</div>'
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


def _card(name: str, content: bytes, recognition: Recognition, context: str = "") -> widgets.Widget:
    """context: the library's line on what placed the photo (`app_context.context_html`)."""
    # the text takes 280 px or the whole row: on a phone the photo sits above it instead of squeezing it
    text = widgets.HTML(render_result_html(name, recognition) + context, layout=widgets.Layout(flex="1 1 280px"))
    text.add_class("lt-text")
    children: list[widgets.Widget] = [text]
    thumb = thumbnail_bytes(content) if recognition.status != "error" else None
    if thumb is not None:
        image = widgets.Image(value=thumb, format="jpeg", layout=widgets.Layout(max_width=f"{THUMB_SIZE}px", height="auto", flex="0 1 auto"))
        children.insert(0, image)
    border = _BORDER.get(recognition.verdict, "#ef9a9a")
    card = widgets.HBox(
        children,
        layout=widgets.Layout(
            border=f"1px solid {border}", padding="10px", margin="6px 0", grid_gap="16px", align_items="flex-start", width="100%",
            flex_flow="row wrap",
        ),
    )
    card.add_class("lt-card")
    return card


class LandmarkApp:
    """The widgets and the upload handler; `build_app()` returns `self.widget`."""

    def __init__(self, recognizer: Recognizer, max_cards: int = MAX_CARDS):
        self.recognizer = recognizer
        self.max_cards = max_cards
        self.upload = widgets.FileUpload(accept=ACCEPT, multiple=True, description=UPLOAD_LABEL, button_style="primary", icon="upload")
        self.upload.add_class("lt-upload")
        self.header = widgets.HTML()
        self.status = widgets.HTML()
        self.results = widgets.VBox([], layout=widgets.Layout(width="100%"))
        self.known = KnownLandmarksPanel(recognizer)
        self.upload.observe(self._on_upload, names="value")
        self._busy = False
        self._counted: Optional[int] = None  # how many landmarks the header and panel last said
        self.widget = widgets.VBox(
            [widgets.HTML(_STYLE_SHEET),
             self.header,
             widgets.HBox([self.upload, self.status], layout=widgets.Layout(align_items="center", grid_gap="12px", flex_flow="row wrap")),
             self.known.widget,
             TeachPanel(recognizer, on_taught=self.refresh_counts).widget,  # a landmark taught here is recognised from the next upload
             self.results],
            layout=widgets.Layout(max_width="900px", padding="8px"),
        )
        self.refresh_counts()

    def refresh_counts(self) -> None:
        """Say how many landmarks it knows now (header, idle status line, "Landmarks I know"): after a
        landmark is taught here, or by another process (the gallery is re-read if it changed)."""
        self.recognizer.refresh_gallery()
        n = len(self.recognizer.landmark_indices)
        if n == self._counted:
            return
        idle = self._counted is None or "No photo yet" in self.status.value
        self._counted = n
        self.header.value = _header_html(f"Upload photos: for each one I guess which of the {n} landmarks it shows, where that is, "
                                         "and suggest tags.")
        if idle:
            self.status.value = f'<div style="{_FONT} {_MUTED}">No photo yet. I know {plural(n, "landmark")}.</div>'
        self.known.refresh()

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
        names = [str(item.get("name") or "photo") for item in files]
        # Photos uploaded together are one library: the others' GPS and times may place a photo, or contradict it.
        located = locate_uploads(names, contents, recognitions)
        recognitions = [as_shown(recognition, answer) for recognition, answer in zip(recognitions, located)]
        cards = []
        for name, content, recognition, answer in zip(names, contents, recognitions, located):
            try:
                cards.append(_card(name, content, recognition, context_html(answer)))
            except Exception as error:  # one odd file must not hide the others' results
                log.warning("could not show %s: %r", name, error)
                cards.append(widgets.HTML(render_result_html(name, Recognition(status="error", message=f"Could not show this photo ({type(error).__name__})."))))
        self.results.children = tuple(cards + list(self.results.children))[: self.max_cards]
        seconds = time.perf_counter() - start
        placed = sum(r.verdict == "placed" for r in recognitions)  # a guess is not a recognition
        by_library = sum(a.decision.placed and a.decision.source not in ("gps", "landmark") for a in located)
        guesses = sum(r.verdict == "guess" for r in recognitions)
        self.status.value = (
            f'<div style="{_FONT} {_MUTED}">{plural(count, "photo")}, {plural(placed, "landmark")} recognized'
            + (f", {guesses} {'guess' if guesses == 1 else 'guesses'} not placed" if guesses else "")
            + (f", {plural(by_library, 'photo')} placed by the photos around {'it' if by_library == 1 else 'them'}" if by_library else "")
            + f" ({seconds:.1f} s).</div>"
        )
        self.refresh_counts()  # another process may have taught one meanwhile
        return recognitions


class KnownLandmarksPanel:
    """The folded "Landmarks I know" panel: every landmark the recognizer can name, trained and taught,
    on a world map drawn when the panel is opened, their names listed below it as text (readable at a
    phone's width). `refresh()` after a landmark is taught; `self.widget` is the Accordion."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer = recognizer
        self.holder = widgets.VBox([])
        self.widget = widgets.Accordion(children=[self.holder], selected_index=None)
        self.widget.observe(self._opened, names="selected_index")
        self.refresh()

    def refresh(self) -> None:
        """The count in the title now; the map redrawn now if the panel is open, else when it is opened."""
        self.widget.set_title(0, f"Landmarks I know ({len(self.recognizer.landmark_infos())})")
        self.holder.children = []
        if self.widget.selected_index == 0:
            self._draw()

    def _opened(self, change: dict) -> None:
        if change.get("new") == 0 and not self.holder.children:
            self._draw()

    def _draw(self) -> None:
        try:
            infos = self.recognizer.landmark_infos()
            image = figure_png(plot_known_landmarks(infos, with_names=False), dpi=80)
        except Exception as error:  # a message in the page and the log, never a blank panel
            log.warning("could not draw the landmarks I know: %r", error)
            self.holder.children = [widgets.HTML(_message_html(f"Could not draw the map ({type(error).__name__}: {error})."))]
            return
        self.holder.children = [widgets.Image(value=image, format="png", layout=widgets.Layout(max_width="100%", height="auto")),
                                widgets.HTML(_names_html(infos))]


def _names_html(infos: Sequence[LandmarkInfo]) -> str:
    """The landmarks' names by country, as text in columns (as many as the width holds)."""
    groups = "".join(
        f'<div><b>{_e(country)}</b><br>' + "<br>".join(_e(name) for name in names) + "</div>"
        for country, names in names_by_country(infos).items()
    )
    return f'<div class="lt-names" style="{_FONT}">{groups}</div>'


def _header_html(explanation: str) -> str:
    return (
        f'<div style="{_FONT}"><h2 style="margin:0 0 4px 0;">Where was this photo taken?</h2>'
        f'<div style="{_MUTED} margin-bottom:8px;">{_e(explanation)}</div></div>'
    )


def _header(explanation: str) -> widgets.HTML:
    return widgets.HTML(_header_html(explanation))


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
