"""Build bind's sample media (assets/): images, audio, video, 3D shapes and texts, with manifest.json and README.md.

The built files are committed, so users and CI never run this script. Rebuilding needs:
  Debian: espeak-ng, sox, libsox-fmt-all, openclipart-svg, librsvg2-bin (rsvg-convert)
      apt-get install -y espeak-ng sox libsox-fmt-all openclipart-svg librsvg2-bin
  Python: scikit-image (its bundled sample photos), pillow, numpy, soundfile, av (PyAV), trimesh

    python assets/build_assets.py [--out DIR]

Deterministic: fixed seeds, sox in repeatable mode (-R), single-threaded encoders; re-running gives the same
bytes with the same tool versions. Every file is written to a temporary name and moved into place.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
import soundfile as sf
import trimesh
from PIL import Image

HERE = Path(__file__).resolve().parent
OPENCLIPART = Path("/usr/share/openclipart/svg")
MAX_SIDE = 448  # longest side of an image, pixels
VIDEO_SIZE = (256, 160)  # width, height (multiples of 32: no uninitialised row padding reaches x264)
VIDEO_FPS = 12
SEED = 0
PROJECT = "the bind project (made by assets/build_assets.py)"

Entry = dict[str, str]


@contextlib.contextmanager
def atomic(dest: Path) -> Iterator[Path]:
    """A temporary path next to ``dest`` (same extension); moved onto ``dest`` only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.stem}-", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def run(*cmd: str | Path) -> None:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))}\nfailed ({done.returncode}): {done.stderr.strip()}")


def entry(out: Path, path: Path, modality: str, caption: str, concept: str, licence: str, source: str,
          made: str) -> Entry:
    rel = path.relative_to(out).as_posix()
    return {"id": f"{modality}/{path.stem}", "modality": modality, "path": rel, "caption": caption,
            "concept": concept, "licence": licence, "source": source, "made": made}


# ---------------------------------------------------------------- images

# (file stem, scikit-image loader, caption, concept, licence, source as its docstring states it)
SKIMAGE_PHOTOS = [
    ("cat", "chelsea", "a photo of a tabby cat", "cat", "CC0-1.0",
     "scikit-image sample 'chelsea'; photo by Stefan van der Walt, CC0"),
    ("coffee", "coffee", "a cup of coffee on a saucer", "coffee", "CC0-1.0",
     "scikit-image sample 'coffee'; photo by Rachel Michetti, CC0"),
    ("rocket", "rocket", "a rocket on its launch pad at dusk, between lightning towers", "rocket", "Public domain",
     "scikit-image sample 'rocket'; Falcon 9 with DSCOVR before launch, photo by SpaceX, released into the "
     "public domain"),
    ("astronaut", "astronaut", "a portrait of an astronaut in an orange space suit", "astronaut", "Public domain",
     "scikit-image sample 'astronaut'; Eileen Collins, NASA Great Images, public domain"),
]

# (file stem, SVG under /usr/share/openclipart/svg, caption, concept)
CLIPART = [
    ("dog", "animals/mammals/dogs/beagle_copper_ganson.svg", "a drawing of a beagle dog", "dog"),
    ("penguin", "animals/birds/emperor_penguin_ralf_ste_01.svg", "a drawing of an emperor penguin", "penguin"),
    ("guitar", "recreation/music/guitar_jarno_vasamaa1.svg", "a drawing of an acoustic guitar", "guitar"),
    ("airplane", "transportation/vehicles/aircraft_jarno_vasamaa2.svg", "a drawing of a passenger jet airplane",
     "airplane"),
    ("car", "transportation/vehicles/car.svg", "a drawing of a small red car", "car"),
    ("alarm_clock", "signs_and_symbols/clocks/alarm_clock_mike_powers_.svg", "a drawing of an alarm clock",
     "clock"),
    ("strawberry", "food/fruit/strawberry.svg", "a drawing of a red strawberry", "strawberry"),
    ("bicycle", "transportation/vehicles/bicycle_01.svg", "a drawing of a bicycle", "bicycle"),
]


def fit(image: Image.Image, side: int = MAX_SIDE) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def svg_creator(svg: Path) -> str:
    """The creator named in an openclipart SVG's RDF metadata, after checking it is marked public domain."""
    ns = {"cc": "http://web.resource.org/cc/", "dc": "http://purl.org/dc/elements/1.1/",
          "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
    work = ET.parse(svg).getroot().find(".//cc:Work", ns)
    licence = work.find("cc:license", ns) if work is not None else None
    if licence is None or not licence.get(f"{{{ns['rdf']}}}resource", "").endswith("PublicDomain"):
        raise SystemExit(f"{svg}: its metadata does not mark it public domain")
    creator = (work.findtext("dc:creator/cc:Agent/dc:title", "", ns) or "").strip()
    if not creator:
        raise SystemExit(f"{svg}: no creator in its metadata")
    return creator


def rasterise(svg: Path) -> Image.Image:
    """The SVG drawn on white, cropped to the drawing with a small margin, at most MAX_SIDE pixels."""
    png = subprocess.run(["rsvg-convert", "--keep-aspect-ratio", "-w", "2048", "-h", "2048", str(svg)],
                         check=True, capture_output=True).stdout
    rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", rgba.size, "white")
    white.alpha_composite(rgba)
    rgb = white.convert("RGB")
    ink = np.asarray(rgb.convert("L")) < 250
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    margin = int(0.04 * max(rows[-1] - rows[0], cols[-1] - cols[0]))
    box = (max(cols[0] - margin, 0), max(rows[0] - margin, 0),
           min(cols[-1] + 1 + margin, rgb.width), min(rows[-1] + 1 + margin, rgb.height))
    return fit(rgb.crop(box))


def build_images(out: Path) -> list[Entry]:
    import skimage.data

    entries = []
    for stem, loader, caption, concept, licence, source in SKIMAGE_PHOTOS:
        dest = out / "images" / f"{stem}.jpg"
        with atomic(dest) as tmp:
            fit(Image.fromarray(getattr(skimage.data, loader)()).convert("RGB")).save(tmp, quality=85, optimize=True)
        made = f"scikit-image {skimage.__version__} skimage.data.{loader}(), resized to <= {MAX_SIDE} px, JPEG"
        entries.append(entry(out, dest, "image", caption, concept, licence, source, made))
    for stem, rel, caption, concept in CLIPART:
        svg = OPENCLIPART / rel
        creator = svg_creator(svg)
        dest = out / "images" / f"{stem}.png"
        with atomic(dest) as tmp:
            rasterise(svg).save(tmp, optimize=True)
        source = f"openclipart.org via Debian openclipart-svg: {rel}, by {creator}"
        made = f"rasterised with rsvg-convert on white, cropped, resized to <= {MAX_SIDE} px, PNG"
        entries.append(entry(out, dest, "image", caption, concept, "Public domain", source, made))
    return entries


# ---------------------------------------------------------------- audio

SPEECH = [
    # (file, text, sample rate, concept)
    ("dog_speech.wav", "a dog is barking", 16000, "dog"),
    ("cat_speech.flac", "the cat says meow", 16000, "cat"),
]

# (file, caption, concept, sample rate, sox effects that synthesise it from nothing: `sox -n ... OUT EFFECTS`)
TONES = [
    ("sine_440hz.ogg", "a steady sine tone at 440 hertz", "tone", 44100,
     "synth 3 sine 440 vol 0.5 fade 0.05 3 0.05"),
    ("chirp.mp3", "a rising chirp, a tone sweeping from low to high pitch", "chirp", 22050,
     "synth 3 sine 200-2000 vol 0.5 fade 0.05 3 0.05"),
    ("white_noise.flac", "static white noise, like an untuned radio", "noise", 16000,
     "synth 3 whitenoise vol 0.3 fade 0.05 3 0.05"),
]


def sox(*args: str | Path) -> None:
    run("sox", "-R", "-V1", *args)  # -R: repeatable random numbers


def pcm16(dest: Path) -> list[str]:
    """sox output options for 16-bit samples where the format has a bit depth (wav, flac)."""
    return ["-b", "16"] if dest.suffix in (".wav", ".flac") else []


def build_audio(out: Path, work: Path) -> list[Entry]:
    entries = []
    for name, text, rate, concept in SPEECH:
        dest = out / "audio" / name
        raw = work / f"{dest.stem}.raw.wav"
        run("espeak-ng", "-v", "en-us", "-s", "140", "-w", raw, text)
        with atomic(dest) as tmp:
            sox(raw, "-r", str(rate), "-c", "1", *pcm16(dest), tmp, "pad", "0.25", "0.25", "norm", "-3")
        entries.append(entry(out, dest, "audio", f'a voice saying "{text}"', concept, "Apache-2.0", PROJECT,
                             f"espeak-ng (voice en-us) speaking the text, resampled by sox to {rate} Hz mono"))
    for name, caption, concept, rate, effects in TONES:
        dest = out / "audio" / name
        with atomic(dest) as tmp:
            sox("-n", "-r", str(rate), "-c", "1", *pcm16(dest), tmp, *effects.split())
        entries.append(entry(out, dest, "audio", caption, concept, "Apache-2.0", PROJECT,
                             f"sox -n -r {rate} -c 1 OUT {effects}"))

    dest = out / "audio" / "ticking_clock.wav"
    tick, tock, pair = work / "tick.wav", work / "tock.wav", work / "ticktock.wav"
    for path, freq in ((tick, 3000), (tock, 2200)):
        sox("-n", "-r", "22050", "-c", "1", path, "synth", "0.02", "sine", str(freq), "fade", "0", "0.02", "0.019",
            "pad", "0", "0.48")
    sox(tick, tock, pair)
    with atomic(dest) as tmp:
        sox(pair, *pcm16(dest), tmp, "repeat", "3", "norm", "-3")
    entries.append(entry(out, dest, "audio", "a clock ticking: tick, tock, tick, tock", "clock", "Apache-2.0",
                         PROJECT, "sox: 20 ms sine clicks (3000 Hz tick, 2200 Hz tock) every 0.5 s, 4 s at 22050 Hz"))

    dest = out / "audio" / "bell.ogg"
    partials = []
    for i, (ratio, gain, decay) in enumerate(((1.0, 0.5, 3.0), (2.0, 0.25, 2.0), (2.76, 0.2, 1.4), (5.4, 0.1, 0.8))):
        part = work / f"bell{i}.wav"
        sox("-n", "-r", "44100", "-c", "1", part, "synth", "3", "sine", f"{523.25 * ratio:.2f}", "vol", str(gain),
            "fade", "l", "0", "3", f"{decay}")
        partials.append(part)
    with atomic(dest) as tmp:
        sox("-m", *partials, *pcm16(dest), tmp, "norm", "-3")
    entries.append(entry(out, dest, "audio", "a bell ringing once and fading away", "bell", "Apache-2.0", PROJECT,
                         "sox: four decaying sine partials of C5 (ratios 1, 2, 2.76, 5.4) mixed, 44100 Hz"))

    dest = out / "audio" / "guitar_chord.mp3"
    strings = ("E2", "B2", "E3", "G#3", "B3", "E4")
    with atomic(dest) as tmp:
        sox("-r", "44100", "-c", str(len(strings)), "-n", "-c", "1", tmp, "synth", "3",
            *[arg for note in strings for arg in ("pluck", note)],
            "delay", *[f"{0.04 * i:.2f}" for i in range(len(strings))], "remix", "-", "fade", "0", "3", "0.5",
            "norm", "-3")
    entries.append(entry(out, dest, "audio", "a guitar strumming an E major chord", "guitar", "Apache-2.0", PROJECT,
                         "sox: six plucked-string tones (E2 B2 E3 G#3 B3 E4) strummed 40 ms apart, 44100 Hz"))
    return entries


# ---------------------------------------------------------------- video

def _cover(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The region ``box`` (left, top, right, bottom) of ``image`` scaled to VIDEO_SIZE."""
    return image.resize(VIDEO_SIZE, Image.Resampling.BICUBIC, box=box)


def zoom_frames(image: Image.Image, seconds: float, end_scale: float) -> list[Image.Image]:
    """A slow zoom from the whole picture (cropped to the video's aspect) into its centre."""
    aspect = VIDEO_SIZE[0] / VIDEO_SIZE[1]
    w0 = min(image.width, image.height * aspect)
    h0 = w0 / aspect
    cx, cy = image.width / 2, image.height / 2
    n = round(seconds * VIDEO_FPS)
    frames = []
    for i in range(n):
        s = 1 - (1 - end_scale) * i / (n - 1)
        w, h = w0 * s, h0 * s
        frames.append(_cover(image, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
    return frames


def pan_up_frames(image: Image.Image, seconds: float, height_fraction: float) -> list[Image.Image]:
    """A window of the video's aspect, ``height_fraction`` of the picture tall, moving from bottom to top."""
    aspect = VIDEO_SIZE[0] / VIDEO_SIZE[1]
    h = image.height * height_fraction
    w = min(h * aspect, image.width)
    h = w / aspect
    left = (image.width - w) / 2
    n = round(seconds * VIDEO_FPS)
    return [_cover(image, (left, top, left + w, top + h))
            for top in np.linspace(image.height - h, 0, n)]


def fly_frames(sprite: Image.Image, seconds: float) -> list[Image.Image]:
    """``sprite`` flying in from the left and out on the right, slightly climbing, over a blue sky."""
    sprite = fit(sprite, VIDEO_SIZE[0] * 2 // 5)
    width, height = VIDEO_SIZE
    blue = np.linspace((110, 160, 230), (200, 225, 250), height)  # deeper blue at the top
    sky = Image.fromarray(np.repeat(blue[:, None, :], width, axis=1).round().astype(np.uint8))
    mask = Image.fromarray((np.asarray(sprite.convert("L")) < 250).astype(np.uint8) * 255)
    n = round(seconds * VIDEO_FPS)
    frames = []
    for i in range(n):
        frame = sky.copy()
        x = round(-sprite.width / 2 + (width - sprite.width / 2) * i / (n - 1))
        y = round(height * 0.45 - height * 0.25 * i / (n - 1))
        frame.paste(sprite, (x, y - sprite.height // 2), mask)
        frames.append(frame)
    return frames


def wobble_frames(image: Image.Image, seconds: float) -> list[Image.Image]:
    """``image`` centred on white, rocking a few degrees left and right, like a ringing alarm clock."""
    image = fit(image, VIDEO_SIZE[1] - 16)
    n = round(seconds * VIDEO_FPS)
    frames = []
    for i in range(n):
        angle = 6 * np.sin(2 * np.pi * 2 * i / VIDEO_FPS)
        frame = Image.new("RGB", VIDEO_SIZE, "white")
        turned = image.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor="white")
        frame.paste(turned, ((VIDEO_SIZE[0] - turned.width) // 2, (VIDEO_SIZE[1] - turned.height) // 2))
        frames.append(frame)
    return frames


def write_mp4(dest: Path, frames: list[Image.Image], audio: Path | None = None) -> None:
    """H.264 (yuv420p) frames, plus ``audio`` as a mono AAC track trimmed or padded to the video's length."""
    with atomic(dest) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS, options={"crf": "26", "preset": "medium",
                                                                         "threads": "1"})
        video.width, video.height = VIDEO_SIZE
        video.pix_fmt = "yuv420p"
        sound = None
        if audio is not None:
            samples, rate = sf.read(audio, dtype="float32", always_2d=True)
            samples = samples.mean(axis=1)
            length = round(len(frames) / VIDEO_FPS * rate)
            samples = np.pad(samples[:length], (0, max(0, length - len(samples))))
            sound = container.add_stream("aac", rate=rate, layout="mono")
        for i, frame in enumerate(frames):
            picture = av.VideoFrame.from_image(frame)
            picture.pts = i
            picture.time_base = Fraction(1, VIDEO_FPS)
            container.mux(video.encode(picture))
        container.mux(video.encode())
        if sound is not None:
            step = 1024
            for start in range(0, len(samples), step):
                chunk = av.AudioFrame.from_ndarray(samples[None, start:start + step], format="fltp", layout="mono")
                chunk.sample_rate = rate
                chunk.pts = start
                chunk.time_base = Fraction(1, rate)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())


def build_video(out: Path) -> list[Entry]:
    images, audio = out / "images", out / "audio"
    made = f"PyAV {av.__version__}: H.264 {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} at {VIDEO_FPS} fps"
    # (file, frames, audio track, caption, concept, what it is made from)
    clips: list[tuple[str, Callable[[], list[Image.Image]], Path | None, str, str, str]] = [
        ("cat_zoom.mp4", lambda: zoom_frames(Image.open(images / "cat.jpg"), 3.0, 0.6), audio / "cat_speech.flac",
         'a slow zoom into a photo of a tabby cat while a voice says "the cat says meow"', "cat",
         "images/cat.jpg (CC0) and audio/cat_speech.flac"),
        ("airplane_flying.mp4", lambda: fly_frames(Image.open(images / "airplane.png"), 3.0), None,
         "a passenger jet airplane flying across a blue sky", "airplane", "images/airplane.png (public domain)"),
        ("rocket_pan.mp4", lambda: pan_up_frames(Image.open(images / "rocket.jpg"), 3.0, 0.7), None,
         "the camera tilting up a rocket that stands on its launch pad at dusk", "rocket",
         "images/rocket.jpg (public domain)"),
        ("alarm_clock_ticking.mp4", lambda: wobble_frames(Image.open(images / "alarm_clock.png"), 4.0),
         audio / "ticking_clock.wav", "an alarm clock rocking from side to side to the sound of a clock ticking",
         "clock", "images/alarm_clock.png (public domain) and audio/ticking_clock.wav"),
    ]
    entries = []
    for name, frames, track, caption, concept, origin in clips:
        dest = out / "video" / name
        write_mp4(dest, frames(), track)
        how = f"{made}, {'with a mono AAC audio track' if track else 'no audio track'}; from {origin}"
        entries.append(entry(out, dest, "video", caption, concept, "Apache-2.0", PROJECT, how))
    return entries


# ---------------------------------------------------------------- 3D

def table() -> trimesh.Trimesh:
    top = trimesh.creation.box(extents=(1.2, 0.8, 0.06))
    top.apply_translation((0, 0, 0.75))
    parts = [top]
    for x in (-0.54, 0.54):
        for y in (-0.34, 0.34):
            leg = trimesh.creation.box(extents=(0.06, 0.06, 0.72))
            leg.apply_translation((x, y, 0.36))
            parts.append(leg)
    return trimesh.util.concatenate(parts)


def mug() -> trimesh.Trimesh:
    body = trimesh.creation.cylinder(radius=0.4, height=1.0, sections=48)
    handle = trimesh.creation.torus(major_radius=0.24, minor_radius=0.06, major_sections=32, minor_sections=12)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    handle.apply_translation((0.58, 0, 0))
    return trimesh.util.concatenate([body, handle])


SHAPES: list[tuple[str, Callable[[], trimesh.Trimesh], str, str]] = [
    ("sphere.ply", lambda: trimesh.creation.icosphere(subdivisions=3, radius=0.5), "a sphere, a round ball", "ball"),
    ("cube.stl", lambda: trimesh.creation.box(extents=(1, 1, 1)), "a cube, a box with six square faces", "cube"),
    ("cylinder.obj", lambda: trimesh.creation.cylinder(radius=0.4, height=1.0, sections=48), "a cylinder",
     "cylinder"),
    ("cone.off", lambda: trimesh.creation.cone(radius=0.5, height=1.0, sections=48), "a cone", "cone"),
    ("torus.ply", lambda: trimesh.creation.torus(major_radius=0.5, minor_radius=0.15, major_sections=48,
                                                 minor_sections=16), "a torus, a ring shaped like a donut", "torus"),
    ("table.obj", table, "a table: a flat top on four legs", "table"),
]


def build_points(out: Path) -> list[Entry]:
    entries = []
    for name, make, caption, concept in SHAPES:
        dest = out / "points" / name
        mesh = make()
        with atomic(dest) as tmp:
            mesh.export(tmp, file_type=dest.suffix[1:])
        how = f"trimesh {trimesh.__version__} primitives, {len(mesh.vertices)} vertices, {len(mesh.faces)} faces"
        entries.append(entry(out, dest, "points", caption, concept, "Apache-2.0", PROJECT, how))
    dest = out / "points" / "mug.npy"
    points, _ = trimesh.sample.sample_surface(mug(), 2048, seed=SEED)
    with atomic(dest) as tmp:
        np.save(tmp, points.astype(np.float32))
    entries.append(entry(out, dest, "points", "a point cloud of a coffee mug with a handle", "coffee", "Apache-2.0",
                         PROJECT, f"2048 points sampled (seed {SEED}) from a cylinder with a torus handle, float32 "
                         "array of shape (2048, 3)"))
    return entries


# ---------------------------------------------------------------- text

TEXTS = [
    ("cat", "a small cat with striped fur"), ("dog", "a dog with long floppy ears"),
    ("penguin", "a penguin walking on the ice"), ("coffee", "a hot cup of coffee"),
    ("strawberry", "a ripe red strawberry"),
    ("guitar", "someone playing the guitar"), ("airplane", "a passenger plane in the sky"),
    ("car", "a red car on the road"), ("clock", "an alarm clock ringing in the morning"),
    ("rocket", "a space rocket ready for launch"), ("bicycle", "riding a bicycle"),
    ("table", "a table with four legs"), ("ball", "a round ball"),
]


def build_text(out: Path) -> list[Entry]:
    entries = []
    for concept, text in TEXTS:
        dest = out / "text" / f"{concept}.txt"
        with atomic(dest) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        entries.append(entry(out, dest, "text", text, concept, "Apache-2.0", PROJECT, "written by hand"))
    return entries


# ---------------------------------------------------------------- manifest and README

README_HEAD = """# bind sample assets

Small sample media of every modality, used by bind's demo (any-to-any retrieval) and its docs. Every item is
public domain, CC0, or made by this project's own script (and then Apache-2.0, like bind). `manifest.json` lists
each file with its modality, caption, licence, source and how it was made; `concept` groups the items that are
about the same thing across modalities (e.g. the cat photo, the cat video, the spoken "the cat says meow" and the
text "a small cat with striped fur"). Load it with `bind.assets.load_manifest()`.

Speech was synthesised with espeak-ng (formant synthesis, no recorded voice data); a program's output is not
covered by the program's own licence. Public-domain clip art comes from openclipart.org through Debian's
`openclipart-svg` package; photos come from scikit-image's bundled samples whose licences its docstrings state.

## Rebuild

The files are committed; nobody needs to rebuild them. To do so (deterministic, atomic writes):

```
apt-get install -y espeak-ng sox libsox-fmt-all openclipart-svg librsvg2-bin
pip install scikit-image
python assets/build_assets.py
```

## Items

| id | file | caption | licence | source |
|---|---|---|---|---|
"""


def prune(out: Path, entries: list[Entry]) -> None:
    """Remove files left in the media folders by earlier builds that no entry lists any more."""
    listed = {out / e["path"] for e in entries}
    for folder in ("images", "audio", "video", "points", "text"):
        for path in (out / folder).iterdir():
            if path.is_file() and path not in listed:
                path.unlink()


def write_manifest(out: Path, entries: list[Entry]) -> None:
    with atomic(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = [f"| {e['id']} | {e['path']} | {e['caption'].replace('|', '/')} | {e['licence']} | {e['source']} |"
            for e in entries]
    with atomic(out / "README.md") as tmp:
        tmp.write_text(README_HEAD + "\n".join(rows) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: this script's folder)")
    out = parser.parse_args().out.resolve()
    with tempfile.TemporaryDirectory() as work:
        entries = (build_images(out) + build_audio(out, Path(work)) + build_video(out) + build_points(out)
                   + build_text(out))
    prune(out, entries)
    write_manifest(out, entries)
    total = sum((out / e["path"]).stat().st_size for e in entries)
    print(f"{len(entries)} items, {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
