"""A held-out set of REAL 3D models with names that say what they are, from Debian and PyPI packages (offline).

The 25 classes of ``prepare_shapes.py`` are trimesh primitives and compositions; this set asks whether a
trained 3D adapter also works on geometry people made: aircraft, ships, buildings and vehicles of FlightGear,
scanned and sculpted classics of CGAL's data (bunny, armadillo, cow, ...), assimp's test models and
pyvista's examples. Every row of ``MESHES`` is chosen by hand: the model's file name (or its package's docs)
says what it is (checked on the rendered depth views), the label is a short common noun; unclear models,
multi-object scenes and near-copies of another row's model are not in the table. The script also leaves
out, with a message, a model with fewer than ``--min-faces`` faces (a point cloud: ``--min-points`` points)
and the same model as an earlier row in another format. Point clouds (CGAL's ``points_3``) stay vertex-only.
The packages are downloaded, not installed; only the conversions need an installed tool:

    mkdir -p data/real_meshes/packages && cd data/real_meshes/packages
    apt-get download assimp-testmodels flightgear-data-models libcgal-demo   # 170 MB of .deb files
    pip download --no-deps pyvista==0.49.1                                    # a 2.7 MB wheel
    cd -
    apt-get install assimp-utils    # the `assimp` command converts .ac/.dae/.ifc/.ms3d/... (not in the venv)
    python recipes/prepare_real_meshes.py [--packages data/real_meshes/packages] [--out data/real_meshes]

Writes ``OUT/meshes/<label>_<name>.ply`` (geometry only: every model converted to binary PLY, textures and
materials dropped) and ``OUT/pairs.csv`` with the columns of ``data/shapes/pairs.csv`` (all ``split=test``;
target "a 3D model of <label>"; ``held_out=1`` where the label is not one of the classes the shape adapters
were trained on) plus ``package``, ``package_path`` and ``licence`` (the row's licence as its package states
it). ``python recipes/compare_points_to_minilm.py --real data/real_meshes/pairs.csv`` evaluates it.
"""
from __future__ import annotations

import argparse
import collections
import csv
import fnmatch
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import trimesh
from prepare_shapes import CAPTION, CLASSES, HELD_OUT

from bind.io.atomic import atomic_path

TRIMESH_FORMATS = (".off", ".ply", ".stl", ".obj", ".glb")
GPL_FG = "GPL-2+ (FlightGear data, Debian copyright of flightgear-data-models)"
CC0_CGAL = "CC0-1.0 (CGAL LICENSE: files without their own notice; Debian libcgal-demo)"
STANFORD = CC0_CGAL + "; model from the Stanford 3D Scanning Repository"
BSD_ASSIMP = "BSD-3-clause (Debian copyright of assimp-testmodels)"
MIT_PYVISTA = "MIT (pyvista wheel)"
# package -> (file name pattern in --packages, how to get it)
PACKAGES = {
    "flightgear-data-models": ("flightgear-data-models_*.deb", "apt-get download flightgear-data-models"),
    "libcgal-demo": ("libcgal-demo_*.deb", "apt-get download libcgal-demo"),
    "assimp-testmodels": ("assimp-testmodels_*.deb", "apt-get download assimp-testmodels"),
    "pyvista": ("pyvista-*.whl", "pip download --no-deps pyvista==0.49.1"),
}
FG = "usr/share/games/flightgear/Models/"
CGAL = "usr/share/doc/libcgal-dev/data.tar.gz!data/"  # "!": a member of a tarball inside the package
ASSIMP = "usr/share/assimp/models/"
# (package, path in the package, label, licence); one row per distinct model
MESHES: tuple[tuple[str, str, str, str], ...] = (
    ("flightgear-data-models", FG + "Aircraft/F-15-lowpoly.ac", "a fighter jet", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/A4-F/a4-f-tanker.ac", "a fighter jet", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/KA6-D/KA6-D.ac", "an airplane", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/KC-130/KC-130.ac", "an airplane", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/KC135/KC135.ac", "an airplane", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/glider.ac", "a glider", GPL_FG),
    ("flightgear-data-models", FG + "Aircraft/H-60.ac", "a helicopter", GPL_FG),
    ("flightgear-data-models", FG + "Aircraft/dauphin.ac", "a helicopter", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/rocket.ac", "a rocket", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/mk82.ac", "a bomb", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/Bomb-500lbs-MC/bomb-500lbs-mc.ac", "a bomb", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/sailboat1/sailboat.ac", "a sailboat", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Civilian/SailBoatUnderSail.ac", "a sailboat", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Civilian/Tanker.ac", "a ship", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Civilian/CruiseShip.ac", "a cruise ship", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Civilian/Trawler.ac", "a fishing boat", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Military/CG47.ac", "a warship", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Misc/liferaft4m.ac", "a life raft", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Misc/Buoy-Conical-Yellow.ac", "a buoy", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Misc/DB_125_Data_Buoy.ac", "a buoy", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Misc/OilRig.ac", "an oil rig", GPL_FG),
    ("flightgear-data-models", FG + "Maritime/Ice/iceberg1.ac", "an iceberg", GPL_FG),
    ("flightgear-data-models", FG + "Transport/110Bus.ac", "a bus", GPL_FG),
    ("flightgear-data-models", FG + "Residential/HelgoVan.ac", "a van", GPL_FG),
    ("flightgear-data-models", FG + "Military/humvee-pickup-odrab-low-poly.ac", "a humvee", GPL_FG),
    ("flightgear-data-models", FG + "Airport/Vehicle/hoskosh-ti-1500.ac", "a fire truck", GPL_FG),
    ("flightgear-data-models", FG + "Airport/Pushback/Forklift.ac", "a forklift", GPL_FG),
    ("flightgear-data-models", FG + "Transport/Class_66.ac", "a locomotive", GPL_FG),
    ("flightgear-data-models", FG + "Transport/locomotive-A4.ac", "a locomotive", GPL_FG),
    ("flightgear-data-models", FG + "Transport/lner-teak-first-class-coach.ac", "a railway carriage", GPL_FG),
    ("flightgear-data-models", FG + "Transport/wagon-ore.ac", "a freight wagon", GPL_FG),
    ("flightgear-data-models", FG + "Geometry/Nimitz/Models/deck-crane.ac", "a crane", GPL_FG),
    ("flightgear-data-models", FG + "Residential/Detached-1.ac", "a house", GPL_FG),
    ("flightgear-data-models", FG + "Residential/SDHouse1.ac", "a house", GPL_FG),
    ("flightgear-data-models", FG + "Residential/SDBungalow1.ac", "a house", GPL_FG),
    ("flightgear-data-models", FG + "Residential/generic-traditional-asian-house-small.ac", "a house", GPL_FG),
    ("flightgear-data-models", FG + "Agriculture/farmhouse1.ac", "a house", GPL_FG),
    ("flightgear-data-models", FG + "Residential/HighriseGrey.ac", "an apartment building", GPL_FG),
    ("flightgear-data-models", FG + "Commercial/hotel-generic-01.ac", "a hotel", GPL_FG),
    ("flightgear-data-models", FG + "Buildings/big-church.ac", "a church", GPL_FG),
    ("flightgear-data-models", FG + "Buildings/factory.ac", "a factory", GPL_FG),
    ("flightgear-data-models", FG + "Commercial/Petrolstation1.ac", "a gas station", GPL_FG),
    ("flightgear-data-models", FG + "Buildings/water-tower.ac", "a water tower", GPL_FG),
    ("flightgear-data-models", FG + "Agriculture/silo.ac", "a silo", GPL_FG),
    ("flightgear-data-models", FG + "Power/coolingtower.ac", "a cooling tower", GPL_FG),
    ("libcgal-demo", CGAL + "meshes/bunny00.off", "a rabbit", STANFORD),
    ("libcgal-demo", CGAL + "meshes/armadillo.off", "an armadillo", STANFORD),
    ("libcgal-demo", CGAL + "meshes/ChineseDragon-10kv.off", "a dragon", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/bear.off", "a teddy bear", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/bull.off", "a bull", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/cow.off", "a cow", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/pig.off", "a pig", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/camel.off", "a camel", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/elephant.off", "an elephant", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/lion.off", "a lion", CC0_CGAL),
    ("libcgal-demo", CGAL + "points_3/kitten.off", "a cat", CC0_CGAL),
    ("libcgal-demo", CGAL + "points_3/hippo1.ply", "a hippopotamus", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/dino.off", "a dinosaur", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/diplodocus.off", "a dinosaur", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/triceratops.off", "a dinosaur", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/cactus.off", "a cactus", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/man.off", "a man", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/homer.off", "a man", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/hand.off", "a hand", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/head.off", "a head", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/nefertiti.off", "a face", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/femur.off", "a bone", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/helmet.off", "a helmet", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/knot.off", "a knot", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/pinion.off", "a gear", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/spool.off", "a spool", CC0_CGAL),
    ("libcgal-demo", CGAL + "meshes/pipe.off", "a pipe", CC0_CGAL),
    ("assimp-testmodels", ASSIMP + "Collada/duck.dae", "a duck",
     "SCEA Shared Source License 1.0 (the file's own notice; Sony COLLADA sample)"),
    ("assimp-testmodels", ASSIMP + "OBJ/spider.obj", "a spider", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "BLEND/Suzanne_248.blend", "a monkey", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "DXF/PinkEggFromLW.dxf", "an egg", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "Collada/human.zae", "a person", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "MD2/sydney.md2", "a woman", "zlib (Irrlicht engine licence, sidney-source.txt)"),
    ("assimp-testmodels", ASSIMP + "MS3D/jeep1.ms3d", "a jeep", "free for any use (jeep1.readme.txt, Psionic)"),
    ("assimp-testmodels", ASSIMP + "glTF/CesiumMilkTruck/CesiumMilkTruck.gltf", "a truck", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "glTF2/2CylinderEngine-glTF-Binary/2CylinderEngine.glb", "an engine", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "MDL/MDL3 (3DGS A4)/minigun.MDL", "a gun",
     "free for everybody (minigun_readme.txt)"),
    ("assimp-testmodels", ASSIMP + "SMD/holy_grailref.smd", "a goblet", BSD_ASSIMP),
    ("assimp-testmodels", ASSIMP + "IFC/AC14-FZK-Haus.ifc", "a house",
     "redistribution permitted by KIT/IAI with attribution (AC14-FZK-Haus.source.txt)"),
    ("pyvista", "pyvista/examples/airplane.ply", "an airplane", MIT_PYVISTA),
    ("pyvista", "pyvista/examples/ant.ply", "an ant", MIT_PYVISTA),
    ("pyvista", "pyvista/examples/nut.ply", "a hex nut", MIT_PYVISTA),
)
TRAINED = {name for name in CLASSES if name not in HELD_OUT}


def package_file(packages: Path, package: str, table: dict[str, tuple[str, str]] | None = None) -> Path:
    """The one downloaded file of ``package`` in ``packages``; SystemExit saying how to get it otherwise.

    ``table`` maps a package to (file name pattern, how to get it); ``PACKAGES`` when not given.
    """
    pattern, command = (PACKAGES if table is None else table)[package]
    found = sorted(packages.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"need exactly one {pattern} in {packages} (found {len(found)}); "
                         f"cd {packages} && {command}")
    return found[0]


def unpack(archive: Path, paths: set[str], into: Path, patterns: tuple[str, ...] = ()) -> None:
    """Write ``paths`` (and a glTF's ``.bin`` buffers beside them) from a .deb or .whl under ``into``.

    Members whose path matches one of the ``fnmatch`` ``patterns`` are written too.
    """
    folders = {str(Path(p).parent) for p in paths if p.endswith(".gltf")}

    def wanted(name: str) -> bool:
        return (name in paths or (name.endswith(".bin") and str(Path(name).parent) in folders)
                or any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns))

    def write(name: str, data: bytes) -> None:
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_bytes(data)

    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            for name in filter(wanted, wheel.namelist()):
                write(name, wheel.read(name))
        return
    try:
        with (subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE) as dpkg,
              tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar):
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and wanted(name):
                    write(name, tar.extractfile(member).read())
    except tarfile.ReadError:  # no or a cut tar stream: dpkg-deb failed and said why on stderr
        raise SystemExit(f"dpkg-deb could not read {archive}") from None
    if dpkg.returncode:
        raise SystemExit(f"dpkg-deb could not read {archive}")


def extract(archive: Path, rows: list[str], into: Path) -> dict[str, Path]:
    """package path -> extracted file, for every row path (``outer.tar.gz!inner`` reads inside a tarball)."""
    outer = {path.split("!")[0] for path in rows}
    unpack(archive, outer, into)
    files = {}
    for path in rows:
        if "!" in path:
            tarball, inner = path.split("!")
            try:
                with tarfile.open(into / tarball) as tar:
                    data = tar.extractfile(inner).read()
            except (FileNotFoundError, KeyError):
                raise SystemExit(f"{path} is not in {archive.name}") from None
            (into / inner).parent.mkdir(parents=True, exist_ok=True)
            (into / inner).write_bytes(data)
            path_on_disk = into / inner
        else:
            path_on_disk = into / path
        if not path_on_disk.is_file():
            raise SystemExit(f"{path} is not in {archive.name}")
        files[path] = path_on_disk
    return files


def geometry(path: Path, scratch: Path) -> trimesh.Trimesh | trimesh.PointCloud:
    """The model as one mesh (scenes flattened with their transforms) or point cloud; assimp converts others."""
    if path.suffix.lower() not in TRIMESH_FORMATS:
        converted = scratch / f"{path.stem}.obj"
        try:
            subprocess.run(["assimp", "export", str(path), str(converted)], check=True, capture_output=True)
        except FileNotFoundError:
            raise SystemExit("the `assimp` command is missing: apt-get install assimp-utils") from None
        path = converted
    loaded = trimesh.load(path, process=False, skip_materials=True)
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry()
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces):
        return trimesh.Trimesh(loaded.vertices, loaded.faces, process=False)
    return trimesh.PointCloud(loaded.vertices)


def fingerprint(shape: trimesh.Trimesh | trimesh.PointCloud) -> tuple:
    """Equal for the same model saved in another format or unit: face count, proportions and relative area."""
    extents = np.ptp(np.asarray(shape.vertices, dtype=np.float64), axis=0)
    scale = extents.max() or 1.0
    faces = len(getattr(shape, "faces", []))
    area = shape.area / scale**2 if faces else 0.0
    return faces or len(shape.vertices), tuple(np.round(extents / scale, 3)), round(float(area), 3)


def prepare(packages: Path, out: Path, min_faces: int, min_points: int) -> list[dict[str, object]]:
    """Extract, convert, check and write every row of ``MESHES``; the manifest rows, in table order."""
    (out / "meshes").mkdir(parents=True, exist_ok=True)
    rows, seen, skipped = [], {}, []
    with tempfile.TemporaryDirectory() as scratch:
        files: dict[tuple[str, str], Path] = {}
        for package in PACKAGES:
            archive = package_file(packages, package)
            paths = [path for name, path, _, _ in MESHES if name == package]
            print(f"reading {len(paths)} models from {archive.name}", flush=True)
            into = Path(scratch) / package
            files.update({(package, p): f for p, f in extract(archive, paths, into).items()})
        for i, (package, path, label, licence) in enumerate(MESHES, start=1):
            shape = geometry(files[package, path], Path(scratch))
            faces = len(getattr(shape, "faces", []))
            size = f"{faces} faces" if faces else f"{len(shape.vertices)} points"
            print(f"[{i}/{len(MESHES)}] {label} <- {package}:{path.split('/')[-1]} ({size})", flush=True)
            key = fingerprint(shape)
            if key in seen:
                skipped.append(f"{path}: the same model as {seen[key]}")
                continue
            if (faces and faces < min_faces) or (not faces and len(shape.vertices) < min_points):
                skipped.append(f"{path}: degenerate ({size})")
                continue
            seen[key] = path
            name = f"{label.split(' ', 1)[1].replace(' ', '_')}_{Path(path).stem.replace(' ', '_')}.ply"
            target = out / "meshes" / name
            with atomic_path(target) as tmp:
                tmp.write_bytes(shape.export(file_type="ply", encoding="binary"))
            rows.append({"source": f"meshes/{name}", "target": CAPTION.format(label), "split": "test",
                         "source_modality": "points", "target_modality": "text", "label": label,
                         "held_out": int(label not in TRAINED), "package": package, "package_path": path,
                         "licence": licence})
    for reason in skipped:
        print(f"skipped {reason}")
    with atomic_path(out / "pairs.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", type=Path, default=Path("data/real_meshes/packages"),
                        help="folder with the downloaded .deb and .whl files")
    parser.add_argument("--out", type=Path, default=Path("data/real_meshes"))
    parser.add_argument("--min-faces", type=int, default=20, help="fewer faces: degenerate, left out")
    parser.add_argument("--min-points", type=int, default=1000, help="the same for point clouds")
    args = parser.parse_args(argv)
    rows = prepare(args.packages, args.out, args.min_faces, args.min_points)
    labels = collections.Counter(row["label"] for row in rows)
    trained = sorted(label for label in labels if label in TRAINED)
    print(f"{len(rows)} models, {len(labels)} labels ({len(trained)} among the trained shape classes: "
          f"{', '.join(trained) or 'none'}) -> {args.out / 'pairs.csv'}")
    print(", ".join(f"{label} {n}" for label, n in labels.most_common()))


if __name__ == "__main__":
    main()
