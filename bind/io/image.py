"""Image decoding: paths, bytes, PIL images and arrays -> RGB PIL images, read the way a viewer shows them.

:func:`to_rgb` is the one rule set (``DECODE_VERSION`` 3):

- EXIF orientation is applied (a phone photo is embedded upright);
- an RGB image tagged with a colour profile other than sRGB (Adobe RGB, a phone's Display P3) is converted
  to sRGB through that profile, as a colour-managed viewer shows it;
- transparency (RGBA, LA, palette or colour-key transparency) is composited on ``BACKGROUND`` (white),
  not dropped, so the hidden colour of transparent pixels never reaches the expert;
- 16-bit and 32-bit integer images are scaled from their full range (65535 -> 255), float images from
  [0, 1] (others from their own min..max), never clipped;
- CMYK is converted through its embedded ICC profile to sRGB when it has one (else PIL's conversion);
- everything else is PIL's ``convert("RGB")``.

Version 1 (bind 0.1.0 before this module's rules) was ``convert("RGB")`` alone; version 2 had every rule but
the colour profiles. The feature cache and an index's reuse check key on the version (:data:`bind.io.DECODING_VERSIONS`), so old and new vectors never mix.
"""
from __future__ import annotations

import io
import os
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, InputError
from .files import open_source

MAX_PIXELS_ENV = "BIND_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # a 10,000 x 10,000 photo; decoded RGB it takes 300 MB
DECODE_VERSION = 3
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on
_ORIENTATION = 0x0112  # the EXIF orientation tag


def load_image(item: Any, limit: int | None = None) -> Image.Image:
    """An RGB PIL image from a path, bytes, a PIL image or an HWC/CHW uint8 or [0, 1] float array.

    ``limit``: the most pixels to decode (default :func:`max_pixels`), checked from the header first.
    """
    limit = max_pixels() if limit is None else limit
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray) or _is_tensor(item):
        return array_to_image(item, limit)
    source, _ = open_source(item)
    try:
        with Image.open(source) as image:
            check_pixels(item, image.size, limit)  # from the header, before anything is decoded
            image.load()
            return to_rgb(image)
    except UnidentifiedImageError:
        raise InputError(item, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(item, f"corrupt or truncated image: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as the RGB picture a viewer shows: upright, transparency on white, full-range scaled (see the
    module docstring)."""
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in ("RGB", "RGBA") and image.info.get("icc_profile"):
        image = _to_srgb(image)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return Image.fromarray(_scaled_to_bytes(np.asarray(image), image.mode)).convert("RGB")
    if image.has_transparency_data:
        return on_white(image)
    if image.mode == "CMYK":
        return _cmyk_to_rgb(image)
    return image.convert("RGB")


def on_white(image: Image.Image) -> Image.Image:
    """An image with transparency composited on ``BACKGROUND`` (white), as RGB."""
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba).convert("RGB")


def _scaled_to_bytes(array: np.ndarray, mode: str) -> np.ndarray:
    """A high-bit-depth grey image as uint8: integers from 0..65535, floats from 0..1, else from their own
    min..max (a constant image becomes black)."""
    values = array.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode == "F":
        full = (0.0, 1.0) if low >= 0 and high <= 1 else (low, high)
    else:
        full = (0.0, 65535.0) if low >= 0 and high <= 65535 else (low, high)
    span = full[1] - full[0]
    scaled = (np.nan_to_num(values, nan=full[0]) - full[0]) / span if span > 0 else np.zeros_like(values)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def _to_srgb(image: Image.Image) -> Image.Image:
    """An RGB(A) image through its embedded profile into sRGB; unchanged when that profile is sRGB already or
    cannot be read."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        if "srgb" in ImageCms.getProfileDescription(source).lower().replace(" ", ""):
            return image
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError):
        return image


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if profile:
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile: fall back to PIL's conversion
    return image.convert("RGB")


def max_pixels() -> int:
    """The largest image (width x height) bind decodes: ``$BIND_MAX_IMAGE_PIXELS``, else 100 megapixels."""
    value = os.environ.get(MAX_PIXELS_ENV, "")
    try:
        return int(value) if value else DEFAULT_MAX_PIXELS
    except ValueError:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a whole number of pixels, got {value!r}") from None


def check_pixels(item: Any, size: tuple[int, int], limit: int) -> None:
    """An InputError naming ``item`` when an image of ``size`` (width, height) is empty or over ``limit``."""
    width, height = size
    if width == 0 or height == 0:
        raise InputError(item, f"the image is empty ({width} x {height} pixels)")
    if width * height > limit:
        raise InputError(item, f"the image is {width} x {height} = {width * height:,} pixels, over the limit of "
                               f"{limit:,} (set {MAX_PIXELS_ENV} to allow larger images)")


def _is_tensor(item: Any) -> bool:
    import torch

    return isinstance(item, torch.Tensor)


def array_to_image(item: Any, limit: int | None = None) -> Image.Image:
    """HWC or CHW arrays with 1, 3 or 4 channels (4: RGBA, composited on white); uint8 in [0, 255], uint16
    in [0, 65535] or floats in [0, 1]."""
    array = item.detach().cpu().numpy() if _is_tensor(item) else np.asarray(item)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise InputError(item, f"an image array must be HWC or CHW, got shape {array.shape}")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] not in (1, 3, 4):
        raise InputError(item, f"an image array needs 1, 3 or 4 channels, got shape {array.shape}")
    check_pixels(item, (array.shape[1], array.shape[0]), max_pixels() if limit is None else limit)
    if array.dtype == np.uint8:
        pass
    elif array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(item, "image array contains NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise InputError(item, "a float image array must hold values in [0, 1]")
        array = (array * 255).round().astype(np.uint8)
    else:
        raise InputError(item, f"unsupported image dtype {array.dtype} (use uint8, uint16 or float)")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    image = Image.fromarray(np.ascontiguousarray(array), "RGBA" if array.shape[-1] == 4 else "RGB")
    return on_white(image) if image.mode == "RGBA" else image


class ImagePreprocessor:
    """Decode any image input, then apply the expert's own transform (picklable for DataLoader workers).

    Every image expert decodes the same way (``decode_key``), so a call that runs several image experts
    decodes each item once (:mod:`bind.experts.runner`).
    """

    decode_key = "image"

    def __init__(self, transform: Callable[[Image.Image], Any]) -> None:
        self.transform = transform
        self.limit = max_pixels()  # read here, in the caller's process: a bad setting fails the call at once

    def decode(self, item: Any) -> Image.Image:
        return load_image(item, self.limit)

    def __call__(self, item: Any) -> Any:  # frames and rendered views (arrays) come here, files via decode
        return self.transform(load_image(item, self.limit))


def image_transform(preprocess: dict[str, Any]) -> Callable[[Image.Image], Any]:
    """Resize (shorter side to size / crop_pct), centre-crop, to tensor, normalise; from a card's preprocess."""
    from torchvision import transforms as T

    size = int(preprocess.get("image_size", 224))
    crop_pct = float(preprocess.get("crop_pct", 0.875))
    interpolation = T.InterpolationMode(preprocess.get("interpolation", "bilinear"))
    return T.Compose([
        T.Resize(int(round(size / crop_pct)), interpolation=interpolation),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(preprocess.get("mean", (0.5, 0.5, 0.5)), preprocess.get("std", (0.5, 0.5, 0.5))),
    ])
