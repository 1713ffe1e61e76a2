"""3D inputs (files, bytes, arrays), depth-view rendering, the point-views expert and a user's own PointNet."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import trimesh

import bind
from bind.experts.backends.point_views import FAR_INTENSITY, PointViewsEncoder, render_depth, viewpoints
from bind.io.points import PointsPreprocessor, load_points, normalize_points, read_points

CARD = "pointviews-efficientnet-lite0.points"
EXTENTS = np.array([1.0, 0.5, 2.0])  # a box twice as deep as wide, half as tall


@pytest.fixture(scope="module")
def box() -> trimesh.Trimesh:
    return trimesh.creation.box(EXTENTS)


def on_box_surface(points: np.ndarray) -> np.ndarray:
    """Whether each point lies on a face of the points' bounding box (whose sides follow EXTENTS)."""
    low, high = points.min(axis=0), points.max(axis=0)
    assert np.allclose((high - low) / (high - low)[0], EXTENTS / EXTENTS[0], atol=1e-3)
    return (np.isclose(points, low, atol=1e-5) | np.isclose(points, high, atol=1e-5)).any(axis=1)


@pytest.mark.parametrize("ext", [".ply", ".obj", ".off", ".stl", ".glb"])
def test_mesh_files_are_sampled_on_the_surface(tmp_path, box, ext):
    path = tmp_path / f"box{ext}"
    box.export(path)
    points = load_points(path, count=500)
    assert points.shape == (500, 3) and points.dtype == np.float32
    assert np.allclose(points.mean(axis=0), 0, atol=0.05)
    assert np.isclose(np.linalg.norm(points, axis=1).max(), 1.0, atol=1e-5)
    assert on_box_surface(points).all()
    assert len(np.unique(points, axis=0)) > 490, "surface samples, not the 8 corners"
    assert np.array_equal(points, load_points(path, count=500)), "seeded"


def test_surface_sampling_is_area_weighted():
    small = trimesh.creation.box((1.0, 1.0, 0.0))
    big = trimesh.creation.box((2.0, 2.0, 0.0))
    big.apply_translation((5.0, 0.0, 0.0))
    buffer = io.BytesIO()
    trimesh.util.concatenate([small, big]).export(buffer, file_type="ply")
    points = read_points(buffer.getvalue(), surface_samples=4000)
    assert 0.15 < (points[:, 0] < 2.5).mean() < 0.25  # area 1 of 1 + 4


def test_point_cloud_ply_gives_its_vertices(tmp_path):
    xyz = np.random.default_rng(0).normal(size=(300, 3))
    trimesh.PointCloud(xyz).export(tmp_path / "cloud.ply")
    assert np.allclose(load_points(tmp_path / "cloud.ply", count=300), normalize_points(xyz), atol=1e-6)


def test_array_files_and_bytes(tmp_path):
    xyzrgb = np.random.default_rng(1).normal(size=(400, 6))
    expected = load_points(xyzrgb[:, :3], count=256)
    np.save(tmp_path / "cloud.npy", xyzrgb)
    np.savez(tmp_path / "named.npz", colours=xyzrgb[:, 3:], points=xyzrgb)
    np.savez(tmp_path / "single.npz", xyzrgb)
    for item in (tmp_path / "cloud.npy", str(tmp_path / "named.npz"), tmp_path / "single.npz",
                 (tmp_path / "cloud.npy").read_bytes(), (tmp_path / "single.npz").read_bytes()):
        assert np.array_equal(load_points(item, count=256), expected)


def test_arrays_tensors_and_int_dtypes():
    xyz = np.random.default_rng(2).integers(-50, 50, size=(100, 3))
    expected = load_points(xyz.astype(np.float64), count=64)
    assert np.allclose(load_points(xyz, count=64), expected)
    assert np.allclose(load_points(torch.from_numpy(xyz).float(), count=64), expected, atol=1e-6)
    assert PointsPreprocessor(64)(xyz).shape == (64, 3)


def test_normalisation_ignores_position_and_scale():
    xyz = np.random.default_rng(3).normal(size=(200, 3))
    points = load_points(xyz, count=200)
    assert np.allclose(points.mean(axis=0), 0, atol=1e-6)
    assert np.isclose(np.linalg.norm(points, axis=1).max(), 1.0)
    assert np.allclose(load_points(xyz * 7.5 + [3, -2, 10], count=200), points, atol=1e-5)


def test_resampling_to_exactly_n_points():
    xyz = normalize_points(np.random.default_rng(4).normal(size=(1000, 3)))
    fewer = load_points(xyz, count=100)
    assert len(np.unique(fewer, axis=0)) == 100, "a subset without replacement"
    more = load_points(xyz[:50], count=120)
    assert more.shape == (120, 3) and len(np.unique(more, axis=0)) == 50, "every point kept, some repeated"
    assert np.array_equal(load_points(xyz, count=100, seed=0), fewer)
    assert not np.array_equal(load_points(xyz, count=100, seed=1), fewer)


@pytest.fixture
def bad(tmp_path) -> dict:
    (tmp_path / "empty.ply").write_bytes(b"")
    (tmp_path / "corrupt.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\n\x00\x01")
    (tmp_path / "corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(tmp_path / "shape.npy", np.zeros((10, 2)))
    (tmp_path / "cloud.xyz").write_text("0 0 0\n1 1 1\n")
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 3)), b=np.ones((5, 3)))
    (tmp_path / "folder.ply").mkdir()
    good = np.random.default_rng(5).normal(size=(20, 3))
    return {
        "nan": (np.where(np.arange(60).reshape(20, 3) == 7, np.nan, good), "NaN or inf"),
        "inf": (np.where(np.arange(60).reshape(20, 3) == 7, np.inf, good), "NaN or inf"),
        "two points": (good[:2], "at least 3 points"),
        "(M, 2)": (good[:, :2], "shape"),
        "3-D": (good[None], "shape"),
        "object dtype": (good.astype(object), "dtype"),
        "str dtype": (good.astype(str), "dtype"),
        "bool dtype": (good > 0, "dtype"),
        "coincident": (np.ones((10, 3)), "coincide"),
        "empty file": (tmp_path / "empty.ply", "empty"),
        "corrupt ply": (tmp_path / "corrupt.ply", "corrupt"),
        "corrupt npy": (tmp_path / "corrupt.npy", "corrupt"),
        "npy of shape (10, 2)": (tmp_path / "shape.npy", "shape"),
        "unknown extension": (tmp_path / "cloud.xyz", "unknown 3D format"),
        "npz of two arrays": (tmp_path / "two.npz", "'points'"),
        "directory": (tmp_path / "folder.ply", "directory"),
        "missing file": (tmp_path / "missing.obj", "not found"),
        "unknown bytes": (b"just some bytes", "unknown 3D byte format"),
    }


BAD = ["nan", "inf", "two points", "(M, 2)", "3-D", "object dtype", "str dtype", "bool dtype", "coincident",
       "empty file", "corrupt ply", "corrupt npy", "npy of shape (10, 2)", "unknown extension", "npz of two arrays",
       "directory", "missing file", "unknown bytes"]


@pytest.mark.parametrize("name", BAD)
def test_bad_inputs_raise_input_error(bad, name):
    item, reason = bad[name]
    with pytest.raises(bind.InputError, match=reason):
        load_points(item, count=32)


def test_empty_mesh_file(tmp_path):
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(bind.InputError, match="no points|at least 3"):
        load_points(tmp_path / "empty.off")


FRONT, RIGHT = (torch.tensor(viewpoints("cube", 2), dtype=torch.float32)[i : i + 1] for i in range(2))


def test_a_sphere_renders_as_a_bright_centred_disc():
    sphere = torch.from_numpy(load_points(trimesh.creation.icosphere(4).export(file_type="ply"), 4096))
    views = render_depth(sphere, torch.tensor(viewpoints("ring", 4), dtype=torch.float32), 64, 2)
    rows, cols = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    radius = ((rows - 32) ** 2 + (cols - 32) ** 2).sqrt()
    for view in views:
        assert (view[radius < 22] > 0).all(), "a filled disc"
        assert (view[radius > 30] == 0).all(), "nothing outside it (radius 0.8 * 32 px + splat)"
        assert view[radius < 4].mean() > 0.95 > view[(radius > 22) & (radius < 24)].mean(), "near = bright"


def test_a_plane_face_on_and_edge_on():
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 40)), -1).reshape(-1, 2)
    plane = torch.from_numpy(load_points(np.c_[grid, np.zeros(len(grid))], 1600))  # the z = 0 plane
    face_on, edge_on = render_depth(plane, FRONT, 64, 1)[0], render_depth(plane, RIGHT, 64, 1)[0]
    assert (face_on > 0).float().mean() > 0.3 and (edge_on > 0).float().mean() < 0.1
    assert (edge_on > 0).any(dim=0).sum() <= 3, "edge-on, the plane is a thin vertical line"


def test_the_nearest_point_wins():
    near_far = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, -0.5]])
    expected = 1 - (1 - FAR_INTENSITY) * 0.5 / 2  # depth 0.5 from the camera plane z = 1
    for points in (near_far, near_far.flip(0)):
        image = render_depth(points, FRONT, 9, 0)[0]
        assert image.max() == pytest.approx(expected) and (image > 0).sum() == 1
        splatted = render_depth(points, FRONT, 9, 1)[0]
        assert (splatted > 0).sum() == 9 and torch.allclose(splatted[splatted > 0], torch.tensor(expected))


@pytest.fixture(scope="module")
def tiny() -> PointViewsEncoder:
    return PointViewsEncoder.tiny(bind.get_card(CARD).replace(
        options={**bind.get_card(CARD).options, "views": 3, "image_size": 64})).freeze()


def test_views_go_through_the_image_experts_preprocessing(tiny):
    views = tiny.preprocessor()(np.random.default_rng(6).normal(size=(500, 3)))
    assert views.shape == (3, 3, 224, 224), "rendered at 64 px, then resized and cropped as the expert does"
    assert views[:, :, 0, 0].eq(-1.0).all(), "empty pixels are black through the expert's mean/std (0.5/0.5)"
    assert (views[:, :, 112, 112] > 0).all(), "the cloud is seen in the middle"


def test_tiny_expert_embeds_every_input_kind(tmp_path, tiny, box):
    box.export(tmp_path / "box.stl")
    items = [tmp_path / "box.stl", np.random.default_rng(7).normal(size=(300, 3)),
             torch.rand(50, 3), np.full((4, 3), np.nan)]
    result = bind.embed(items, encoder=tiny, batch_size=2, on_error="skip", num_workers=1)  # renders in a worker
    assert result.embeddings.shape == (3, 1280) and result.indices == [0, 1, 2]
    assert [e.index for e in result.failures] == [3] and "NaN" in result.failures[0].reason


def test_real_expert_with_two_views(box):
    expert = bind.create_encoder(CARD, views=2)
    assert expert.views == 2 and bind.weights_available(bind.get_card(CARD))
    sphere = trimesh.creation.icosphere(3).vertices
    vectors = bind.embed([box.vertices, sphere, sphere * 3 + 1], encoder=expert)
    assert vectors.shape == (3, 1280) and torch.isfinite(vectors).all()
    assert torch.allclose(vectors[1], vectors[2], atol=1e-5), "position and scale do not matter"
    assert (vectors[0] @ vectors[1]) < 0.99, "a box is not a sphere"


@pytest.mark.parametrize("options, match", [
    ({"views": 7}, "cube"), ({"viewpoints": "spiral"}, "viewpoints"), ({"points": 0}, "points"),
    ({"splat": -1}, "splat"), ({"image_encoder": "minilm-l6.text"}, "embeds text, not image"),
    ({"image_encoder": None}, "image_encoder"),
])
def test_bad_options(options, match):
    with pytest.raises(bind.ConfigError, match=match):
        bind.create_encoder(CARD, pretrained=False, **options)


def test_card_dim_must_match_the_image_expert():
    card = bind.get_card(CARD).replace(dim=512)
    with pytest.raises(bind.ConfigError, match="1280"):
        PointViewsEncoder(card, pretrained=False)


def test_a_users_own_point_network(tmp_path):
    weights = tmp_path / "pointnet.safetensors"
    points_array = np.random.default_rng(8).normal(size=(5000, 3))
    # --- the user's part (the README example) ---
    from safetensors.torch import load_file

    class MyPointNet(bind.Encoder):
        def __init__(self, card, pretrained=True):
            super().__init__(card)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, card.dim))
            if pretrained:
                self.load_state_dict(load_file(card.model_id))

        def preprocessor(self):  # any point cloud or 3D file -> [1024, 3], centred, in the unit sphere
            return PointsPreprocessor(count=1024)

        def forward(self, batch):  # [B, 1024, 3] -> [B, dim]: shared MLP, max over the points
            return self.mlp(self.to_input(batch)).max(dim=1).values

    bind.register_encoder({"name": "mypointnet.v1", "modality": "points", "dim": 256, "backend": "mypointnet",
                           "model_id": str(weights), "licence": "MIT", "weights": "my own training run"},
                          backend=MyPointNet, overwrite=True)
    # --- (the test trains nothing: it saves random weights where the card points) ---
    from safetensors.torch import save_file

    save_file(bind.create_encoder("mypointnet.v1", pretrained=False).state_dict(), str(weights))
    # --- the user's part, continued ---
    vector = bind.embed(points_array, encoder="mypointnet.v1")
    # --- checks ---
    assert vector.shape == (256,) and torch.isclose(vector.norm(), torch.tensor(1.0))
    again = bind.embed([points_array * 2, points_array[:, [1, 0, 2]]], encoder="mypointnet.v1")
    assert torch.allclose(again[0], vector, atol=1e-5) and not torch.allclose(again[1], vector, atol=1e-3)
