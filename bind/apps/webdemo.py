"""The demo's web page (Gradio): search an index of any modality by text or by an uploaded file.

Results of every modality are shown with their scores: images inline, audio and video playable, 3D shapes
as a rendered depth preview. A query that cannot be embedded (an unreadable file, an unknown extension, a
modality the space lacks, a text over ``MAX_QUERY_CHARS``) shows a readable message in the page; the server
keeps serving. Queries go through Gradio's bounded queue (``QUEUE_SIZE`` waiting, ``WORKERS`` at once), so
one user's slow query cannot stall everyone (``bench/demo_load.py`` measures it).

Needs the ``demo`` extra (``pip install bind[demo]``, i.e. gradio).
"""
from __future__ import annotations

import hashlib
import html
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..assets import AssetEntry
from ..errors import BindError
from ..experts.backends.point_views import render_depth, view_rotation
from ..experts.modality import Modality, extension_modality
from ..index import Index
from ..io.points import load_points
from .demo import NO_AUDIO, Row, captions, rows

FILE_ROUTE = "/gradio_api/file="  # how Gradio (>= 5) serves the files under launch(allowed_paths=...)
PREVIEW_ANGLES = ((30.0, 20.0), (120.0, 20.0), (0.0, 80.0))  # (azimuth, elevation) of the 3D preview views
MODALITY_CHOICES = [m.value for m in (Modality.IMAGE, Modality.VIDEO, Modality.POINTS, Modality.TEXT, Modality.AUDIO)]
MAX_QUERY_CHARS = 1000  # a text query's cap: one user's query costs bounded time
QUEUE_SIZE = 64  # queries waiting beyond this are refused with "queue full" rather than piling up
WORKERS = 2  # queries embedded at once; the rest wait in the queue, first come first served


def render_preview(path: str | Path, folder: Path, size: int = 160) -> Path:
    """A PNG of three depth views of a 3D file, side by side (cached in ``folder`` by the file's content)."""
    data = Path(path).read_bytes()
    out = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.png"
    if not out.exists():
        points = torch.from_numpy(load_points(Path(path), 4096))
        rotations = torch.as_tensor(np.stack([view_rotation(az, el) for az, el in PREVIEW_ANGLES]), dtype=torch.float32)
        views = (render_depth(points, rotations, size, max(1, size // 60)) * 255).round().to(torch.uint8)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(torch.cat(list(views), dim=1).numpy()).save(out)
    return out


class DemoApp:
    """The page's query handler over one index; ``preview_dir`` holds the rendered 3D previews."""

    def __init__(self, index: Index, preview_dir: Path, by_path: dict[str, AssetEntry] | None = None) -> None:
        self.index = index
        self.preview_dir = Path(preview_dir)
        self.by_path = captions() if by_path is None else by_path

    def query(self, text: str | None, upload: str | None, modalities: list[str] | None, k: float,
              layout: str = "mixed") -> tuple[str, str]:
        """Search with the uploaded file (when given) or the text; returns (results HTML, status markdown).

        ``layout``: "mixed" (one ranking of every modality) or "lanes" (the top ``k`` of each modality)."""
        text = (text or "").strip()
        if not upload and not text:
            return "", "Type a query or upload a file."
        if upload:
            kind = extension_modality(upload)
            if kind is None:
                return "", _error(f"{Path(upload).name}: unknown file type {Path(upload).suffix!r}; upload an image, "
                                  "a sound, a video or a 3D file (.ply .obj .off .stl .glb .npy)")
            query: Any = Path(upload)
            described = f"{kind.value} {Path(upload).name}"
        elif len(text) > MAX_QUERY_CHARS:
            return "", _error(f"the query is {len(text):,} characters long; the demo takes at most {MAX_QUERY_CHARS:,}")
        else:
            kind, query, described = Modality.TEXT, text, repr(text)
        if not modalities:
            return "", _error("select at least one result modality")
        lanes = [[m] for m in modalities] if layout == "lanes" else [modalities]
        try:
            tables = [rows(self.index.search(query, k=max(1, int(k)), result_modality=lane, query_modality=kind),  # type: ignore[arg-type]
                           self.by_path) for lane in lanes]
        except BindError as exc:
            return "", _error(f"could not search with {described}: {getattr(exc, 'reason', exc)}")
        count = sum(len(table) for table in tables)
        if layout == "lanes":
            html_rows = "".join(f'<h4>{html.escape(lane[0])}</h4>{self.results_html(table)}'
                                for lane, table in zip(lanes, tables) if table)
            return f'<div class="bind-lanes">{html_rows}</div>', f"{count} results for {described}, by modality"
        return self.results_html(tables[0]), f"{count} results for {described}"

    def results_html(self, table: list[Row]) -> str:
        """One card per result: rank, score, modality, the media itself, caption."""
        cards = []
        for row in table:
            relevance = "" if row.relevance is None else f"relevance {row.relevance:.2f} · "
            cards.append(f'<div class="bind-hit" data-modality="{row.modality.value}">'
                         f'<div><b>#{row.rank}</b> {relevance}cos {row.cosine:.3f} · {row.modality.value}</div>'
                         f'{self.media(row)}<div class="bind-caption">{html.escape(row.caption)}</div></div>')
        return f'<div class="bind-results">{"".join(cards)}</div>'

    def media(self, row: Row) -> str:
        path = row.path
        if not path:
            return f"<code>{html.escape(row.id)}</code>"
        if row.modality == Modality.POINTS:
            try:
                path = str(render_preview(path, self.preview_dir))
            except (BindError, OSError) as exc:
                return f"<i>no preview: {html.escape(str(exc))}</i>"
        src = html.escape(FILE_ROUTE + path, quote=True)
        if row.modality in (Modality.IMAGE, Modality.POINTS):
            return f'<img src="{src}" alt="{html.escape(row.id)}">'
        if row.modality == Modality.VIDEO:
            return f'<video controls preload="metadata" src="{src}"></video>'
        if row.modality == Modality.AUDIO:
            return f'<audio controls preload="none" src="{src}"></audio>'
        return f"<code>{html.escape(row.id)}</code>"


def _error(message: str) -> str:
    return f"**Error:** {message}"


CSS = """
.bind-results {display: flex; flex-wrap: wrap; gap: 12px;}
.bind-hit {width: 240px; border: 1px solid #ccc; border-radius: 6px; padding: 8px;}
.bind-hit img, .bind-hit video {max-width: 100%; max-height: 160px; display: block; margin: 6px 0;}
.bind-hit audio {width: 100%;}
"""


def build_app(app: DemoApp) -> Any:
    """The Gradio Blocks page of ``app``."""
    import gradio as gr

    present = {app.index.entry(i).modality.value for i in app.index.ids}
    choices = [m for m in MODALITY_CHOICES if m in present]
    with gr.Blocks(title="bind: any-to-any search") as page:
        note = "" if "audio" in present else f" Note: {NO_AUDIO}."
        gr.Markdown("# bind: any-to-any search over assets/\nType a query or upload an image, a sound, a video "
                    f"or a 3D file.{note}")
        with gr.Row():
            text = gr.Textbox(label="Text query", placeholder="a cat", elem_id="bind-text", max_length=MAX_QUERY_CHARS)
            upload = gr.File(label="or upload a file", type="filepath", elem_id="bind-upload")
        with gr.Row():
            modalities = gr.CheckboxGroup(choices, value=choices, label="Result modalities", elem_id="bind-modalities")
            k = gr.Slider(1, max(1, len(app.index)), value=min(8, len(app.index)), step=1, label="Results")
            layout = gr.Radio(["mixed", "lanes"], value="mixed", label="Layout", elem_id="bind-layout")
            button = gr.Button("Search", variant="primary", elem_id="bind-search")
        status = gr.Markdown(elem_id="bind-status")
        results = gr.HTML(elem_id="bind-results")
        inputs = [text, upload, modalities, k, layout]
        for trigger in (button.click, text.submit, upload.upload):
            trigger(app.query, inputs, [results, status], api_name="search" if trigger == button.click else False)
    return page.queue(max_size=QUEUE_SIZE, default_concurrency_limit=WORKERS)


def serve(index: Index, *, host: str = "127.0.0.1", port: int = 7860, cache: Path, block: bool = True) -> Any:
    """Serve the demo page of ``index``; previews go to ``cache/previews``. Returns the page (non-blocking)."""

    app = DemoApp(index, Path(cache) / "previews")
    folders = {str(Path(p).parent) for p in app.by_path} | {
        str(Path(index.entry(i).metadata["path"]).parent) for i in index.ids if "path" in index.entry(i).metadata}
    page = build_app(app)
    page.launch(server_name=host, server_port=port, allowed_paths=sorted(folders | {str(app.preview_dir)}),
                prevent_thread_lock=not block, quiet=not block, css=CSS)
    return page
