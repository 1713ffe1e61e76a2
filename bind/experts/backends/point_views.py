"""A 3D expert from any image expert (PointCLIP-style): embed depth-map views of the point cloud.

The point cloud (normalised into the unit sphere) is rotated to K viewpoints and projected
orthographically onto an HxW grid; each pixel keeps its nearest point (scatter-min), which is splatted
over its neighbourhood (nearest still wins), and depth becomes intensity (near = bright, empty = black).
The grey views then go through the image expert's own preprocessing (resize, crop, mean/std), like any
image it embeds; the embedding is the mean over the views. Rendering runs in the preprocessor (DataLoader
workers) and gives ``[K, 3, H, W]`` per item.

Card options (override with ``bind.create_encoder(name, views=4, ...)``):
``image_encoder`` (required), ``points`` (2048), ``views`` (6), ``viewpoints`` ("cube": the first
``views`` of front, right, back, left, top, bottom; "ring": ``views`` azimuths at ``elevation`` degrees,
default 30), ``image_size`` (render size, default the image expert's), ``splat`` (radius in pixels, default
image_size / 45: 5 at 224),
``seed`` (0, for point sampling), ``chunk`` (64 views per image-expert call).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...io.points import load_points
from ..cards import EncoderCard
from ..encoder import Encoder, collate_segments, pool_segments
from ..modality import Modality
from .video import (
    encode_images,
    inner_available,
    inner_expert,
    positive_int_option,
    tiny_inner_experts,
    wrapper_trunk,
)

# (azimuth, elevation) in degrees of the six axis-aligned cameras; y is up, the front camera sits on +z
CUBE_VIEWS = ((0.0, 0.0), (90.0, 0.0), (180.0, 0.0), (270.0, 0.0), (0.0, 90.0), (0.0, -90.0))
FAR_INTENSITY = 0.25  # the farthest possible point (depth 2) is this bright; empty pixels are 0
MARGIN = 0.8  # the unit sphere spans this fraction of the view: splats and centre crops (e.g. 0.875) keep it


def view_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """The rotation taking a camera at (azimuth, elevation) degrees onto +z (image x right, y up)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    turn = np.array([[math.cos(az), 0.0, -math.sin(az)], [0.0, 1.0, 0.0], [math.sin(az), 0.0, math.cos(az)]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(el), -math.sin(el)], [0.0, math.sin(el), math.cos(el)]])
    return tilt @ turn


def viewpoints(layout: str, views: int, elevation: float = 30.0) -> np.ndarray:
    """``[views, 3, 3]`` rotations: the first ``views`` cube cameras, or a ring of azimuths."""
    if layout == "cube":
        if views > len(CUBE_VIEWS):
            raise ConfigError(f"the 'cube' layout has {len(CUBE_VIEWS)} views, {views} asked; use 'ring'")
        angles = CUBE_VIEWS[:views]
    elif layout == "ring":
        angles = tuple((360.0 * k / views, elevation) for k in range(views))
    else:
        raise ConfigError(f"viewpoints must be 'cube' or 'ring', got {layout!r}")
    return np.stack([view_rotation(az, el) for az, el in angles])


def render_depth(points: torch.Tensor, rotations: torch.Tensor, size: int, splat: int) -> torch.Tensor:
    """Depth-intensity views ``[K, size, size]`` in [0, 1] of unit-sphere points ``[N, 3]``.

    Orthographic; per pixel the nearest point wins (scatter-min), then a min-filter of radius
    ``splat`` spreads each point over its neighbours; intensity 1 at the near pole, FAR_INTENSITY at
    the far one, 0 where nothing is seen.
    """
    views = len(rotations)
    seen = torch.einsum("kij,nj->kni", rotations.to(points.dtype), points)  # [K, N, 3]; +z faces the camera
    cols = ((seen[..., 0] * MARGIN + 1) / 2 * size).long().clamp_(0, size - 1)
    rows = ((1 - seen[..., 1] * MARGIN) / 2 * size).long().clamp_(0, size - 1)
    depth = (1 - seen[..., 2]).clamp_(0, 2)  # distance from the plane z = 1 in front of the sphere
    flat = (torch.arange(views).unsqueeze(1) * size * size + rows * size + cols).reshape(-1)
    nearest = torch.full((views * size * size,), math.inf, dtype=points.dtype)
    nearest.scatter_reduce_(0, flat, depth.reshape(-1), reduce="amin")
    nearest = nearest.view(views, 1, size, size)
    if splat > 0:
        nearest = -F.max_pool2d(-nearest, 2 * splat + 1, stride=1, padding=splat)
    intensity = 1 - (1 - FAR_INTENSITY) * nearest / 2
    return torch.where(torch.isfinite(nearest), intensity, torch.zeros_like(intensity)).squeeze(1)


class PointViewsPreprocessor:
    """Item -> ``[K, 3, H, W]``: K depth views through the image expert's own preprocessor (picklable)."""

    def __init__(self, count: int, seed: int, rotations: np.ndarray, size: int, splat: int,
                 image_preprocessor: Callable[[np.ndarray], torch.Tensor]) -> None:
        self.count, self.seed, self.size, self.splat = count, seed, size, splat
        self.rotations = torch.as_tensor(rotations, dtype=torch.float32)
        self.image_preprocessor = image_preprocessor

    @property
    def decode_key(self) -> tuple[str, int, int]:
        """View experts that sample as many points share one reading of a 3D file (bind.experts.runner)."""
        return ("points", self.count, self.seed)

    def decode(self, item: Any) -> np.ndarray:
        return load_points(item, self.count, self.seed)

    def __call__(self, item: Any) -> torch.Tensor:
        return self.transform(self.decode(item))

    def transform(self, cloud: np.ndarray) -> torch.Tensor:
        """Depth views of a unit-sphere point cloud through the image expert's preprocessor."""
        points = torch.from_numpy(cloud)
        grey = (render_depth(points, self.rotations, self.size, self.splat) * 255).round().to(torch.uint8)
        rgb = grey.unsqueeze(-1).expand(-1, -1, -1, 3).numpy()
        return torch.stack([self.image_preprocessor(view) for view in rgb])


class PointViewsEncoder(Encoder):
    """A frozen 3D expert: the mean of an image expert's embeddings of K depth views."""

    inner_keys = ("image_encoder",)

    def __init__(self, card: EncoderCard, pretrained: bool = True,
                 experts: Mapping[str, Encoder] | None = None) -> None:
        super().__init__(card)
        if not card.options.get("image_encoder"):
            raise ConfigError(f"{card.name!r}: options.image_encoder must name an image expert")
        self.image = inner_expert(card, "image_encoder", Modality.IMAGE, pretrained, experts)
        self.inner = torch.nn.ModuleList([self.image.encoder])
        self.points = positive_int_option(card, "points", 2048)
        self.views = positive_int_option(card, "views", 6)
        self.seed = int(card.options.get("seed", 0))
        self.chunk = positive_int_option(card, "chunk", 64)
        inner_size = int(self.image.card.preprocess.get("image_size", 224))
        self.image_size = positive_int_option(card, "image_size", inner_size)
        self.splat = card.options.get("splat", max(1, round(self.image_size / 45)))
        if isinstance(self.splat, bool) or not isinstance(self.splat, int) or self.splat < 0:
            raise ConfigError(f"{card.name!r}: options.splat must be a non-negative integer, got {self.splat!r}")
        self.rotations = viewpoints(card.options.get("viewpoints", "cube"), self.views,
                                    float(card.options.get("elevation", 30.0)))
        if self.image.card.dim != card.dim:
            raise ConfigError(f"{card.name!r}: {self.image.card.name!r} gives {self.image.card.dim}-d embeddings, "
                              f"the card says {card.dim}")

    @classmethod
    def trunk(cls, card: EncoderCard) -> tuple[dict[str, Any], str]:
        return wrapper_trunk(card, super().trunk(card)[0], "image_encoder")

    @classmethod
    def weights_available(cls, card: EncoderCard) -> bool:
        return inner_available(card, ("image_encoder",))

    @classmethod
    def tiny(cls, card: EncoderCard) -> "PointViewsEncoder":
        return cls(card, pretrained=False, experts=tiny_inner_experts(card, ("image_encoder",)))

    def preprocessor(self) -> PointViewsPreprocessor:
        return PointViewsPreprocessor(self.points, self.seed, self.rotations, self.image_size, self.splat,
                                      self.image.encoder.preprocessor())

    def collate(self, samples: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return collate_segments(samples)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return self.forward_heads(batch, [self.image.head])[self.image.head]

    def forward_heads(self, batch: tuple[torch.Tensor, torch.Tensor], heads: Sequence[str]) -> dict[str, torch.Tensor]:
        """Each head of the image network, pooled over each item's views."""
        views, counts = batch
        return {head: pool_segments(out, counts) for head, out in encode_images(self.image, views, self.chunk, heads).items()}
