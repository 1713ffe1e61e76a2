"""A labelled 3D training set that needs no network: trimesh primitives and compositions with their names.

Each class is a generator of random instances (proportions, scale, rotation about every axis), so no two
meshes are alike and none equals the default-parameter primitives of ``assets/points`` (the out-of-domain
check). Splits are by instance: per seen class ``--train``/``--val``/``--test`` instances; the
``HELD_OUT`` classes appear only in ``test`` (``held_out=1``), to see whether an adapter generalises beyond
its training labels. Writes ``OUT/meshes/<class>_<i>.ply|.obj`` and ``OUT/pairs.csv`` (columns source,
target, split, source_modality, target_modality, label, held_out); the target is "a 3D model of a <name>".

    python recipes/prepare_shapes.py [--out data/shapes] [--train 16 --val 2 --test 3 --held-out-instances 4]
"""
from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh
from trimesh import creation
from trimesh.transformations import (
    random_rotation_matrix,
    rotation_matrix,
    translation_matrix,
)

Rng = np.random.Generator
CAPTION = "a 3D model of {}"


def u(rng: Rng, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def at(mesh: trimesh.Trimesh, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> trimesh.Trimesh:
    return mesh.apply_transform(translation_matrix([x, y, z]))


def box(x: float, y: float, z: float, cx: float = 0.0, cy: float = 0.0, cz: float = 0.0) -> trimesh.Trimesh:
    return at(creation.box(extents=[x, y, z]), cx, cy, cz)


def cyl(radius: float, height: float, cz: float = 0.0, sections: int = 32) -> trimesh.Trimesh:
    return at(creation.cylinder(radius=radius, height=height, sections=sections), z=cz)


def half_sphere(radius: float, upper: bool) -> trimesh.Trimesh:
    """An open hemisphere shell (the faces of an icosphere on one side of z = 0)."""
    mesh = creation.icosphere(subdivisions=3, radius=radius)
    keep = (mesh.triangles_center[:, 2] > 0) == upper
    return trimesh.Trimesh(mesh.vertices, mesh.faces[keep])


def hull(points: list[list[float]]) -> trimesh.Trimesh:
    return trimesh.convex.convex_hull(np.asarray(points, dtype=float))


def cube(r: Rng) -> trimesh.Trimesh:
    s = u(r, 0.5, 2.0)
    return box(s, s, s)


def brick(r: Rng) -> trimesh.Trimesh:
    return box(u(r, 1.6, 3.0), u(r, 0.6, 1.2), u(r, 0.3, 0.7))


def sphere(r: Rng) -> trimesh.Trimesh:
    return creation.icosphere(subdivisions=int(r.integers(2, 5)), radius=u(r, 0.5, 2.0))


def egg(r: Rng) -> trimesh.Trimesh:
    mesh = creation.icosphere(subdivisions=3)
    mesh.apply_scale([u(r, 0.6, 0.8), u(r, 0.6, 0.8), 1.0])
    return mesh


def cylinder(r: Rng) -> trimesh.Trimesh:
    return cyl(u(r, 0.3, 1.2), u(r, 0.8, 3.0), sections=int(r.integers(24, 48)))


def cone(r: Rng) -> trimesh.Trimesh:
    return creation.cone(radius=u(r, 0.4, 1.2), height=u(r, 0.8, 2.5), sections=int(r.integers(24, 48)))


def torus(r: Rng) -> trimesh.Trimesh:
    major = u(r, 0.8, 1.5)
    return creation.torus(major_radius=major, minor_radius=major * u(r, 0.2, 0.45))


def ring(r: Rng) -> trimesh.Trimesh:
    outer = u(r, 0.8, 1.5)
    return creation.annulus(r_min=outer * u(r, 0.6, 0.85), r_max=outer, height=outer * u(r, 0.1, 0.3))


def capsule(r: Rng) -> trimesh.Trimesh:
    return creation.capsule(height=u(r, 0.8, 2.5), radius=u(r, 0.3, 0.7))


def icosahedron(r: Rng) -> trimesh.Trimesh:
    return creation.icosahedron().apply_scale(u(r, 0.5, 2.0))


def tetrahedron(r: Rng) -> trimesh.Trimesh:
    return hull([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]).apply_scale(u(r, 0.5, 2.0))


def pyramid(r: Rng) -> trimesh.Trimesh:
    w, h = u(r, 0.8, 1.5), u(r, 0.8, 2.0)
    return hull([[-w, -w, 0], [w, -w, 0], [w, w, 0], [-w, w, 0], [0, 0, h]])


def table(r: Rng) -> trimesh.Trimesh:
    w, d, h, t, leg = u(r, 1.2, 2.4), u(r, 0.7, 1.4), u(r, 0.7, 1.2), u(r, 0.04, 0.12), u(r, 0.05, 0.12)
    legs = [box(leg, leg, h, sx * (w / 2 - leg), sy * (d / 2 - leg), h / 2) for sx in (-1, 1) for sy in (-1, 1)]
    return trimesh.util.concatenate([box(w, d, t, cz=h + t / 2), *legs])


def chair(r: Rng) -> trimesh.Trimesh:
    s, h, back, t, leg = u(r, 0.8, 1.1), u(r, 0.8, 1.1), u(r, 0.8, 1.3), u(r, 0.06, 0.12), u(r, 0.06, 0.1)
    legs = [box(leg, leg, h, sx * (s / 2 - leg), sy * (s / 2 - leg), h / 2) for sx in (-1, 1) for sy in (-1, 1)]
    rest = box(s, t, back, 0, s / 2 - t / 2, h + t + back / 2)
    return trimesh.util.concatenate([box(s, s, t, cz=h + t / 2), rest, *legs])


def mug(r: Rng) -> trimesh.Trimesh:
    radius, height = u(r, 0.4, 0.7), u(r, 0.9, 1.6)
    handle = creation.torus(major_radius=height * u(r, 0.25, 0.35), minor_radius=u(r, 0.05, 0.1))
    handle.apply_transform(rotation_matrix(np.pi / 2, [1, 0, 0]))
    return trimesh.util.concatenate([cyl(radius, height), at(handle, x=radius)])


def bottle(r: Rng) -> trimesh.Trimesh:
    radius, body, neck = u(r, 0.3, 0.6), u(r, 1.2, 2.2), u(r, 0.4, 0.9)
    shoulder = at(creation.cone(radius=radius, height=radius * u(r, 0.8, 1.5)), z=body / 2)
    return trimesh.util.concatenate([cyl(radius, body), shoulder,
                                     cyl(radius * u(r, 0.25, 0.4), neck, cz=body / 2 + neck / 2 + radius * 0.4)])


def dumbbell(r: Rng) -> trimesh.Trimesh:
    bar, weight = u(r, 1.4, 2.4), u(r, 0.3, 0.6)
    ends = [at(creation.icosphere(subdivisions=2, radius=weight) if r.random() < 0.5
               else cyl(weight, weight * u(r, 0.6, 1.2)), z=sz * bar / 2) for sz in (-1, 1)]
    return trimesh.util.concatenate([cyl(weight * u(r, 0.15, 0.3), bar), *ends])


def bowl(r: Rng) -> trimesh.Trimesh:
    mesh = half_sphere(1.0, upper=False)
    mesh.apply_scale([1.0, 1.0, u(r, 0.4, 0.9)])
    return mesh


def lamp(r: Rng) -> trimesh.Trimesh:
    pole, base = u(r, 1.2, 2.2), u(r, 0.3, 0.6)
    shade = creation.cone(radius=u(r, 0.4, 0.8), height=u(r, 0.4, 0.8))
    return trimesh.util.concatenate([cyl(base, 0.1, cz=0.05), cyl(0.04, pole, cz=pole / 2), at(shade, z=pole * 0.85)])


def house(r: Rng) -> trimesh.Trimesh:
    w, d, h = u(r, 1.0, 2.0), u(r, 1.0, 2.0), u(r, 0.8, 1.4)
    roof = hull([[-w / 2, -d / 2, h], [w / 2, -d / 2, h], [w / 2, d / 2, h], [-w / 2, d / 2, h],
                 [0, 0, h + u(r, 0.5, 1.2)]])
    return trimesh.util.concatenate([box(w, d, h, cz=h / 2), roof])


def snowman(r: Rng) -> trimesh.Trimesh:
    radii = sorted((u(r, 0.6, 0.8), u(r, 0.4, 0.55), u(r, 0.25, 0.38)), reverse=True)
    parts, z = [], 0.0
    for radius in radii:
        z += radius
        parts.append(at(creation.icosphere(subdivisions=2, radius=radius), z=z))
        z += radius * 0.8
    return trimesh.util.concatenate(parts)


def tree(r: Rng) -> trimesh.Trimesh:
    trunk, crown = u(r, 0.5, 1.0), u(r, 1.2, 2.2)
    return trimesh.util.concatenate([cyl(u(r, 0.08, 0.15), trunk, cz=trunk / 2),
                                     at(creation.cone(radius=u(r, 0.5, 0.9), height=crown), z=trunk)])


def mushroom(r: Rng) -> trimesh.Trimesh:
    stem = u(r, 0.5, 1.0)
    cap = half_sphere(u(r, 0.6, 1.0), upper=True)
    return trimesh.util.concatenate([cyl(u(r, 0.15, 0.3), stem, cz=stem / 2), at(cap, z=stem)])


def hourglass(r: Rng) -> trimesh.Trimesh:
    radius, half = u(r, 0.5, 0.9), u(r, 0.7, 1.2)
    top = creation.cone(radius=radius, height=half).apply_transform(rotation_matrix(np.pi, [1, 0, 0]))
    return trimesh.util.concatenate([at(top, z=half), creation.cone(radius=radius, height=half).apply_translation([0, 0, -half])])


def stool(r: Rng) -> trimesh.Trimesh:
    h, seat = u(r, 0.7, 1.1), u(r, 0.35, 0.55)
    legs = [at(cyl(0.05, h), seat * 0.7 * np.cos(a), seat * 0.7 * np.sin(a), h / 2) for a in (0, 2.1, 4.2)]
    return trimesh.util.concatenate([cyl(seat, 0.08, cz=h + 0.04), *legs])


# name in the caption -> generator; the held-out classes are only ever in the test split
CLASSES: dict[str, Callable[[Rng], trimesh.Trimesh]] = {
    "a cube": cube, "a brick": brick, "a sphere": sphere, "an egg": egg, "a cylinder": cylinder, "a cone": cone,
    "a torus": torus, "a flat ring": ring, "a capsule": capsule, "an icosahedron": icosahedron,
    "a tetrahedron": tetrahedron, "a pyramid": pyramid, "a table": table, "a chair": chair, "a mug": mug,
    "a bottle": bottle, "a dumbbell": dumbbell, "a bowl": bowl, "a lamp": lamp, "a house": house,
    "a snowman": snowman, "a tree": tree, "a mushroom": mushroom, "an hourglass": hourglass, "a stool": stool,
}
HELD_OUT = ("a snowman", "a mushroom", "an hourglass", "a stool")


def instance(make: Callable[[Rng], trimesh.Trimesh], rng: Rng) -> trimesh.Trimesh:
    """One random instance: the class's own random proportions, a random rotation and a random scale."""
    mesh = make(rng)
    mesh.apply_transform(random_rotation_matrix(rng.random(3)))
    return mesh.apply_scale(u(rng, 0.5, 2.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data/shapes"))
    parser.add_argument("--train", type=int, default=16)
    parser.add_argument("--val", type=int, default=2)
    parser.add_argument("--test", type=int, default=3)
    parser.add_argument("--held-out-instances", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    (args.out / "meshes").mkdir(parents=True, exist_ok=True)
    rows = []
    for label, (name, make) in enumerate(CLASSES.items()):
        held = name in HELD_OUT
        splits = ["test"] * args.held_out_instances if held else \
            ["train"] * args.train + ["val"] * args.val + ["test"] * args.test
        for i, split in enumerate(splits):
            path = Path("meshes") / f"{name.split(' ', 1)[1].replace(' ', '_')}_{i:02d}.{'ply' if i % 2 else 'obj'}"
            instance(make, rng).export(args.out / path)
            rows.append({"source": str(path), "target": CAPTION.format(name), "split": split,
                         "source_modality": "points", "target_modality": "text", "label": name,
                         "held_out": int(held)})
    with (args.out / "pairs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    print(f"{len(rows)} meshes of {len(CLASSES)} classes ({len(HELD_OUT)} held out) -> {args.out / 'pairs.csv'}: {counts}")


if __name__ == "__main__":
    main()
