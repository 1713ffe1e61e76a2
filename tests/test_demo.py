"""The offline any-to-any demo: `bind demo --no-serve`, the page's query handler, and the served page."""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bind.apps.cli import main
from bind.apps.demo import cache_dir, demo_index
from bind.assets import assets_dir

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bind-cache")


@pytest.fixture(scope="module")
def index(cache):
    return demo_index(cache_dir(cache), progress=False)[0]


@pytest.fixture
def app(index, tmp_path):
    from bind.apps.webdemo import DemoApp

    return DemoApp(index, tmp_path / "previews")


def _top_ids(out: str, query: str, n: int) -> list[str]:
    block = out.split(f"{query!r}\n", 1)[1].splitlines()[1 : 1 + n]
    return [line.split()[5] for line in block]  # rank, relevance, score, cosine, modality, id


def test_no_serve_ranks_relevant_items_first(index, cache, capsys):
    assert main(["demo", "--no-serve", "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "0 embedded now" in out  # the fixture built it: reused
    assert "44 items" in out  # 36 + the 8 audio clips, through lite's BirdNET path (installed for tests)
    top = _top_ids(out, "a cat", 3)
    assert {"images/cat.jpg", "video/cat_zoom.mp4", "text/cat.txt"} == set(top)
    assert "images/guitar.png" in _top_ids(out, "a guitar", 3)
    assert "images/rocket.jpg" in _top_ids(out, "a rocket launch", 3)
    assert _top_ids(out, "images/cat.jpg", 1) == ["images/cat.jpg"]


def test_text_query_and_modality_filter(app):
    html, status = app.query("a cat", None, ["video"], 3)
    assert status == "3 results for 'a cat'"
    assert html.count('class="bind-hit"') == 3 and 'data-modality="image"' not in html
    assert "cat_zoom.mp4" in html.split('class="bind-hit"')[1] and "<video controls" in html


def test_upload_queries_and_3d_preview(app, tmp_path):
    photo = tmp_path / "query.jpg"
    shutil.copy(assets_dir() / "images" / "guitar.png", tmp_path / "query.png")
    Image.open(tmp_path / "query.png").convert("RGB").save(photo)
    html, status = app.query("", str(photo), ["image", "points"], 4)
    assert status.startswith("4 results for image query.jpg") and "guitar.png" in html.split('class="bind-hit"')[1]
    html, _ = app.query("a cube", None, ["points"], 2)
    previews = [p for p in (tmp_path / "previews").glob("*.png") if p.name in html]
    assert len(previews) == 2, "each of the two 3D hits is shown as a rendered preview"
    assert Image.open(previews[0]).size == (480, 160)


@pytest.mark.parametrize("name, data, message", [
    ("broken.png", b"\x89PNG\r\n\x1a\n garbage", "could not search with image broken.png"),
    ("shape.xyz", b"1 2 3", "unknown file type '.xyz'"),
    ("sound.wav", b"RIFF", "could not search with audio sound.wav"),
    ("empty.ply", b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n", "could not search with points empty.ply"),
])
def test_bad_upload_is_a_readable_message(app, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    html, status = app.query("", str(path), ["image"], 5)
    assert html == "" and status.startswith("**Error:**") and message in status
    assert app.query("a guitar", None, ["image"], 1)[1] == "1 results for 'a guitar'"  # still serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium) "
                    "and the playwright Python package")
def test_served_page_in_headless_chromium(index, cache, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    from bind.apps.webdemo import serve

    port = _free_port()
    page_app = serve(index, host="127.0.0.1", port=port, cache=cache_dir(cache), block=False)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.locator("#bind-text textarea").fill("a cat")
            page.locator("#bind-search").click()
            page.wait_for_selector(".bind-hit", timeout=60_000)
            assert "cat" in page.locator(".bind-hit").first.inner_text()
            assert page.locator(".bind-hit img").first.evaluate("img => img.complete && img.naturalWidth > 0")
            page.locator("#bind-upload input[type=file]").set_input_files(_bad_file(tmp_path))
            page.wait_for_function("document.querySelector('#bind-status').innerText.includes('Error')",
                                   timeout=60_000)
            page.locator("#bind-upload button[aria-label='Clear']").first.click()
            page.locator("#bind-upload input[type=file]").set_input_files(str(assets_dir() / "images" / "dog.png"))
            page.wait_for_function("document.querySelector('#bind-status').innerText.includes('image dog.png')",
                                   timeout=60_000)
            assert "beagle" in page.locator(".bind-hit").first.inner_text()
            page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            browser.close()
        assert (tmp_path / "demo.png").stat().st_size > 10_000
    finally:
        page_app.close()


def _bad_file(folder: Path) -> str:
    path = folder / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff not really a jpeg")
    return str(path)


def test_3d_preview_shows_the_shape(tmp_path):
    from bind.apps.webdemo import render_preview

    out = render_preview(assets_dir() / "points" / "torus.ply", tmp_path)
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (160, 480) and (pixels > 0).mean() > 0.05 and pixels.max() > 200


def test_the_demo_serves_twenty_concurrent_users_while_one_sends_a_huge_query(index, cache):
    """Over loopback: every query is answered (the huge one with a readable refusal) and the server keeps
    serving. Latencies are measured by bench/demo_load.py, not asserted here."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    from bind.apps.webdemo import MAX_QUERY_CHARS, serve

    port = _free_port()
    page_app = serve(index, host="127.0.0.1", port=port, cache=cache_dir(cache), block=False)
    try:
        modalities = ["image", "video", "points", "text", "audio"]
        url = f"http://127.0.0.1:{port}/"

        def ask(text: str) -> tuple[str, str]:
            client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
            return client.predict(text, None, [m for m in modalities if m in present], 5, "mixed", api_name="/search")

        present = {index.entry(i).modality.value for i in index.ids}
        queries = ["a cat", "a dog barking", "a guitar", "a rocket", "a bicycle"] * 4
        huge = "a very long query " * (100_000 // 18)
        with ThreadPoolExecutor(max_workers=21) as pool:
            huge_answer = pool.submit(ask, huge)
            answers = list(pool.map(ask, queries))
        assert all('class="bind-hit"' in html and status.startswith("5 results") for html, status in answers)
        html, status = huge_answer.result()
        assert html == "" and f"at most {MAX_QUERY_CHARS:,}" in status
        assert "cat" in ask("a cat")[0]  # still serving
    finally:
        page_app.close()


def test_lanes_show_the_top_k_of_each_modality_with_cosines(app):
    html, status = app.query("a cat", None, ["image", "points"], 2, "lanes")
    assert status.endswith("by modality") and html.count("<h4>") == 2
    assert html.count('data-modality="image"') == 2 and html.count('data-modality="points"') == 2
    assert "cos 0." in html
