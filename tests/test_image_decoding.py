"""Images are read as a viewer shows them: transparency on white, EXIF orientation, 16-bit and float scaled,
CMYK and palette transparency converted; and the decoding version keeps old and new vectors apart."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import bind
from bind.experts.cache import expert_fingerprint
from bind.index import storage
from bind.io import DECODING_VERSIONS, decoding_version
from bind.io.image import BACKGROUND, DECODE_VERSION, load_image

EXPERT = "efficientnet-lite0.image"
ASSET = Path(__file__).resolve().parents[1] / "assets" / "images"


def picture() -> Image.Image:
    """A real asset picture (RGB), small enough to keep the tests fast."""
    path = sorted(ASSET.glob("*.png"))[0]
    with Image.open(path) as image:
        return image.convert("RGB").resize((96, 96))


def saved(image: Image.Image, path: Path, **params) -> Path:
    image.save(path, **params)
    return path


def cosine(a: Path | Image.Image, b: Path | Image.Image) -> float:
    vectors = bind.embed([a, b], encoder=EXPERT)
    return float(torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0))


def test_rgba_is_composited_on_white_not_stripped(tmp_path) -> None:
    rgb = np.asarray(picture()).copy()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :48] = 0  # the left half is transparent, and its hidden pixels are pure red
    rgb[:, :48] = (255, 0, 0)
    path = saved(Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), tmp_path / "cutout.png")
    decoded = np.asarray(load_image(path))
    assert (decoded[:, :48] == BACKGROUND).all()
    assert (decoded[:, 48:] == rgb[:, 48:]).all()
    flattened = rgb.copy()
    flattened[:, :48] = BACKGROUND
    assert cosine(path, saved(Image.fromarray(flattened), tmp_path / "flat.png")) > 0.9999


def test_half_transparent_pixels_blend_with_white() -> None:
    pixel = load_image(Image.new("LA", (4, 4), (0, 128)))  # black at half opacity
    assert np.allclose(np.asarray(pixel), 127, atol=1)


def test_palette_transparency_is_white(tmp_path) -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    image.info["transparency"] = 1
    path = saved(image, tmp_path / "palette.png", transparency=1)
    assert (np.asarray(load_image(path)) == BACKGROUND).all()


def test_sixteen_bit_png_is_scaled_not_saturated(tmp_path) -> None:
    grey8 = np.asarray(picture().convert("L"))
    grey16 = grey8.astype(np.uint16) * 257
    path = saved(Image.fromarray(grey16), tmp_path / "deep.png")
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # really a 16-bit file
    assert np.abs(np.asarray(load_image(path).convert("L")).astype(int) - grey8).max() <= 1
    assert cosine(path, saved(Image.fromarray(grey8), tmp_path / "shallow.png")) > 0.999


def test_float_tiff_is_scaled_from_unit_range(tmp_path) -> None:
    grey = np.asarray(picture().convert("L"))
    path = saved(Image.fromarray((grey / 255).astype(np.float32), "F"), tmp_path / "float.tiff")
    assert np.abs(np.asarray(load_image(path).convert("L")).astype(int) - grey).max() <= 1


def test_exif_orientation_is_applied(tmp_path) -> None:
    upright = picture().resize((96, 64))
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # a camera writes it sideways, with orientation 6
    exif = Image.Exif()
    exif[0x0112] = 6
    path = saved(stored, tmp_path / "phone.jpg", exif=exif, quality=95)
    decoded = load_image(path)
    assert decoded.size == upright.size
    assert cosine(path, saved(upright, tmp_path / "upright.jpg", quality=95)) > 0.99


def test_cmyk_is_converted(tmp_path) -> None:
    rgb = picture()
    path = saved(rgb.convert("CMYK"), tmp_path / "print.jpg", quality=95)
    with Image.open(path) as image:
        assert image.mode == "CMYK"
    assert cosine(path, saved(rgb, tmp_path / "screen.jpg", quality=95)) > 0.99


def test_arrays_uint16_and_rgba() -> None:
    rgb = np.asarray(picture())
    assert np.array_equal(np.asarray(load_image(rgb.astype(np.uint16) * 257)), rgb)
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert (np.asarray(load_image(rgba)) == BACKGROUND).all()


def test_the_decoding_version_keys_the_feature_cache(monkeypatch) -> None:
    card = bind.get_card(EXPERT)
    encoder = bind.create_encoder(EXPERT)
    assert expert_fingerprint(card, encoder)["decoding"] == DECODE_VERSION == decoding_version("image")
    monkeypatch.setitem(DECODING_VERSIONS, "image", DECODE_VERSION + 1)
    assert expert_fingerprint(card, encoder)["decoding"] == DECODE_VERSION + 1


def test_an_index_re_embeds_files_decoded_under_an_older_version(tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    saved(picture(), folder / "a.png")
    saved(picture().rotate(90), folder / "b.png")
    out = tmp_path / "idx"
    space = bind.AnchorSpace({"image": EXPERT})
    _, first = bind.Index.build_from_folder(folder, space, out=out, progress=False)
    assert len(first.added) == 2
    _, again = bind.Index.build_from_folder(folder, space, out=out, progress=False)
    assert again.unchanged == 2 and again.embedded == 0
    # an index written before decoding versions existed: its records carry none (version 1)
    live = storage.live_version(out)
    records = [json.loads(line) for line in (live / "records.jsonl").read_text().splitlines()]
    for record in records:
        record["source"].pop("decoding")
    (live / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = json.loads((live / "manifest.json").read_text())
    manifest["files"] = storage.checksums(live, "manifest.json")
    (live / "manifest.json").write_text(json.dumps(manifest))
    _, upgraded = bind.Index.build_from_folder(folder, space, out=out, progress=False)
    assert sorted(upgraded.updated) == ["a.png", "b.png"] and upgraded.embedded == 2
    assert all(e["source"]["decoding"] == DECODE_VERSION
               for e in map(json.loads, (storage.live_version(out) / "records.jsonl").read_text().splitlines()))


def test_a_wide_gamut_profile_is_converted_to_srgb(tmp_path) -> None:
    """The fixture profile is icc-profiles-free's compatibleWithAdobeRGB1998.icc (Zlib licence)."""
    from PIL import ImageCms

    adobe = (Path(__file__).with_name("fixtures") / "compatibleWithAdobeRGB1998.icc").read_bytes()
    ramp = np.linspace(40, 255, 96).astype(np.uint8)
    pattern = np.zeros((96, 96, 3), np.uint8)  # saturated red, green and blue bands, dark to bright
    for band in range(3):
        pattern[band * 32 : (band + 1) * 32, :, band] = ramp
    pixels = Image.fromarray(pattern)
    tagged = saved(pixels, tmp_path / "adobe.png", icc_profile=adobe)
    expected = ImageCms.profileToProfile(pixels, ImageCms.ImageCmsProfile(io.BytesIO(adobe)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    decoded = np.asarray(load_image(tagged)).astype(int)
    assert np.abs(decoded - np.asarray(expected)).max() <= 1
    assert np.abs(decoded - np.asarray(pixels)).mean() > 2  # the numbers changed: Adobe RGB is wider than sRGB
    assert cosine(tagged, saved(expected, tmp_path / "srgb.png")) > 0.9999
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert np.array_equal(np.asarray(load_image(saved(pixels, tmp_path / "s.png", icc_profile=srgb))),
                          np.asarray(pixels))  # an sRGB tag changes nothing
