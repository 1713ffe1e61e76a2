"""Image decoding: paths, bytes, PIL images and arrays -> RGB PIL images."""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, InputError
from .files import open_source

MAX_PIXELS_ENV = "BIND_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # a 10,000 x 10,000 photo; decoded RGB it takes 300 MB


def load_image(item: Any, limit: int | None = None) -> Image.Image:
    """An RGB PIL image from a path, bytes, a PIL image or an HWC/CHW uint8 or [0, 1] float array.

    ``limit``: the most pixels to decode (default :func:`max_pixels`), checked from the header first.
    """
    limit = max_pixels() if limit is None else limit
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray) or _is_tensor(item):
        return array_to_image(item, limit)
    source, _ = open_source(item)
    try:
        with Image.open(source) as image:
            check_pixels(item, image.size, limit)  # from the header, before anything is decoded
            image.load()
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise InputError(item, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(item, f"corrupt or truncated image: {exc}") from None


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
    """HWC or CHW arrays with 1, 3 or 4 channels; uint8 in [0, 255] or floats in [0, 1]."""
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
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(item, "image array contains NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise InputError(item, "a float image array must hold values in [0, 1]")
        array = (array * 255).round().astype(np.uint8)
    else:
        raise InputError(item, f"unsupported image dtype {array.dtype} (use uint8 or float)")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]))


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
