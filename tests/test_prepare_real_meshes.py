"""recipes/prepare_real_meshes.py on tiny packages built here: a .deb (with a tarball inside) and a wheel."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from trimesh import creation

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(RECIPES))  # the script imports its sibling prepare_shapes, as `python recipes/...` allows
try:
    import prepare_real_meshes as prep
    import prepare_shapes
finally:
    sys.path.remove(str(RECIPES))

DEB, WHEEL = "toy-models", "toy-wheel"
TOY_PACKAGES = {DEB: ("toy-models_*.deb", "apt-get download toy-models"),
                WHEEL: ("toy_wheel-*.whl", "pip download --no-deps toy-wheel==1.0")}
TOY = "usr/share/toy/"
DATA = "usr/share/doc/toy/data.tar.gz!data/"
SPHERE = creation.icosphere(subdivisions=1)                              # 80 faces
MODELS = {  # path in its package -> the model written there
    TOY + "sphere.off": SPHERE,
    TOY + "cube.obj": creation.box(),                                    # 12 faces: degenerate
    TOY + "capsule.ply": creation.capsule(count=[6, 6]),                 # 72 faces
    TOY + "gltf/cylinder.gltf": creation.cylinder(0.5, 1.0, sections=16),  # 64 faces, needs assimp
    "data/meshes/cone.off": creation.cone(0.5, 1.0, sections=16),        # 32 faces, in the tarball
    "data/points/cloud.ply": trimesh.PointCloud(np.random.default_rng(0).normal(size=(50, 3))),
    "data/points/few.ply": trimesh.PointCloud(np.random.default_rng(1).normal(size=(10, 3))),
    "toy_wheel/examples/ball.ply": SPHERE,                               # sphere.off again, as PLY
    "toy_wheel/examples/torus.obj": creation.torus(1.0, 0.3, major_sections=8, minor_sections=6),  # 96 faces
}
TABLE = (
    (DEB, TOY + "sphere.off", "a sphere", "L-sphere"),            # a trained shape class
    (DEB, TOY + "cube.obj", "a cube", "L-cube"),
    (DEB, TOY + "capsule.ply", "a mushroom", "L-capsule"),        # one of prepare_shapes.HELD_OUT
    (DEB, DATA + "meshes/cone.off", "a traffic cone", "L-cone"),  # not a class of prepare_shapes at all
    (DEB, DATA + "points/cloud.ply", "a point cloud", "L-cloud"),
    (DEB, DATA + "points/few.ply", "a dust cloud", "L-few"),
    (WHEEL, "toy_wheel/examples/ball.ply", "a ball", "L-ball"),
    (WHEEL, "toy_wheel/examples/torus.obj", "a torus", "L-torus"),
)
ARGS = ["--min-faces", "20", "--min-points", "40"]


def export(model: trimesh.Trimesh | trimesh.PointCloud, name: str) -> dict[str, bytes]:
    """File name -> bytes of ``model`` saved as ``name`` (a glTF brings its .bin buffers along)."""
    if name.endswith(".gltf"):
        files = model.export(file_type="gltf")
        return {name: files.pop("model.gltf")} | {str(Path(name).parent / file): data for file, data in files.items()}
    data = model.export(file_type=Path(name).suffix[1:])
    return {name: data.encode() if isinstance(data, str) else data}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with toy-models_1.0_all.deb and toy_wheel-1.0-py3-none-any.whl holding ``MODELS``."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("the dpkg-deb command is missing (Debian's dpkg)")
    root = tmp_path_factory.mktemp("real_meshes")
    files = {name: data for path, model in MODELS.items() for name, data in export(model, path).items()}
    tree = root / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN").chmod(0o755)
    (tree / "DEBIAN" / "control").write_text("Package: toy-models\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: Test <test@example.org>\nDescription: toy models\n")
    for name, data in files.items():
        if name.startswith(TOY):
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(data)
    tarball = tree / DATA.split("!")[0]
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in files.items():
            if name.startswith("data/"):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = root / "packages"
    out.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out / "toy-models_1.0_all.deb")],
                   check=True, capture_output=True)
    with zipfile.ZipFile(out / "toy_wheel-1.0-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            if name.startswith("toy_wheel/"):
                wheel.writestr(name, data)
    return out


@pytest.fixture
def toy_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prep, "PACKAGES", TOY_PACKAGES)
    monkeypatch.setattr(prep, "MESHES", TABLE)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def shapes_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The columns of the pairs.csv prepare_shapes.py writes (one mesh per class: fast)."""
    monkeypatch.setattr(sys, "argv", ["prepare_shapes.py", "--out", str(tmp_path / "shapes"), "--train", "1",
                                      "--val", "0", "--test", "0", "--held-out-instances", "1"])
    prepare_shapes.main()
    return read_rows(tmp_path / "shapes" / "pairs.csv")[0]


def leftovers(out: Path) -> list[Path]:
    """Temporary files an unfinished atomic write would leave behind."""
    return [path for path in out.rglob("*") if path.name.startswith(".") or path.suffix == ".tmp"]


def test_prepare_writes_binary_ply_and_manifest(packages: Path, tmp_path: Path, toy_table: None,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "real"
    prep.main(["--packages", str(packages), "--out", str(out), *ARGS])
    printed = capsys.readouterr().out
    columns, rows = read_rows(out / "pairs.csv")
    assert columns == shapes_columns(tmp_path, monkeypatch) + ["package", "package_path", "licence"]
    kept = [row for row in TABLE if row[2] not in ("a cube", "a dust cloud", "a ball")]
    assert [(r["package"], r["package_path"], r["label"], r["licence"]) for r in rows] == kept
    assert {r["split"] for r in rows} == {"test"}
    assert {(r["source_modality"], r["target_modality"]) for r in rows} == {("points", "text")}
    assert all(r["target"] == f"a 3D model of {r['label']}" for r in rows)
    assert rows[0]["target"] == "a 3D model of a sphere"
    assert {r["label"]: r["held_out"] for r in rows} == {
        "a sphere": "0", "a torus": "0", "a mushroom": "1", "a traffic cone": "1", "a point cloud": "1"}
    sources = {r["package_path"].split("!")[-1]: r["source"] for r in rows}
    for path, faces in ((TOY + "sphere.off", 80), (TOY + "capsule.ply", 72), ("data/meshes/cone.off", 32),
                        ("toy_wheel/examples/torus.obj", 96)):
        source = out / sources[path]
        assert source.read_bytes().startswith(b"ply\nformat binary_little_endian")
        mesh = trimesh.load(source, process=False)
        assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == faces == len(MODELS[path].faces)
    assert sources["data/points/cloud.ply"] == "meshes/point_cloud_cloud.ply"
    cloud = trimesh.load(out / sources["data/points/cloud.ply"], process=False)
    assert isinstance(cloud, trimesh.PointCloud) and len(cloud.vertices) == 50  # stays vertex-only
    assert sorted(p.name for p in (out / "meshes").iterdir()) == sorted(Path(r["source"]).name for r in rows)
    assert f"skipped {TOY}cube.obj: degenerate (12 faces)" in printed
    assert f"skipped {DATA}points/few.ply: degenerate (10 points)" in printed
    assert f"skipped toy_wheel/examples/ball.ply: the same model as {TOY}sphere.off" in printed
    assert "5 models, 5 labels (2 among the trained shape classes: a sphere, a torus)" in printed


def test_missing_package_names_it_and_how_to_get_it(packages: Path, tmp_path: Path, toy_table: None) -> None:
    only_deb = tmp_path / "packages"
    only_deb.mkdir()
    shutil.copy(packages / "toy-models_1.0_all.deb", only_deb)
    with pytest.raises(SystemExit, match=r"toy_wheel-\*\.whl .*found 0.*pip download --no-deps toy-wheel==1\.0"):
        prep.main(["--packages", str(only_deb), "--out", str(tmp_path / "real")])
    shutil.copy(packages / "toy_wheel-1.0-py3-none-any.whl", only_deb / "toy_wheel-0.9-py3-none-any.whl")
    shutil.copy(packages / "toy_wheel-1.0-py3-none-any.whl", only_deb)
    with pytest.raises(SystemExit, match=r"exactly one toy_wheel-\*\.whl .*found 2"):
        prep.main(["--packages", str(only_deb), "--out", str(tmp_path / "real")])
    assert not (tmp_path / "real" / "pairs.csv").exists()


@pytest.mark.parametrize("package, command", [
    ("libcgal-demo", "apt-get download libcgal-demo"), ("pyvista", "pip download --no-deps pyvista==0.49.1")])
def test_the_real_packages_say_how_to_get_them(tmp_path: Path, package: str, command: str) -> None:
    with pytest.raises(SystemExit, match=f"cd {tmp_path} && {command}"):
        prep.package_file(tmp_path, package)


@pytest.mark.parametrize("path", [TOY + "missing.off", DATA + "meshes/missing.off",
                                  "usr/share/doc/toy/missing.tar.gz!data/meshes/cone.off"])
def test_a_path_not_in_the_package_is_a_clear_error(packages: Path, tmp_path: Path, path: str) -> None:
    with pytest.raises(SystemExit, match=f"{path} is not in toy-models_1.0_all.deb"):
        prep.extract(packages / "toy-models_1.0_all.deb", [TOY + "sphere.off", path], tmp_path)


def test_a_broken_deb_is_a_clear_error(tmp_path: Path) -> None:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("the dpkg-deb command is missing (Debian's dpkg)")
    broken = tmp_path / "toy-models_1.0_all.deb"
    broken.write_bytes(b"!<arch>\nnot a package")
    with pytest.raises(SystemExit, match="dpkg-deb could not read"):
        prep.extract(broken, [TOY + "sphere.off"], tmp_path / "into")


def test_rerun_and_failed_run_leave_no_half_written_files(packages: Path, tmp_path: Path, toy_table: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "real"
    argv = ["--packages", str(packages), "--out", str(out), *ARGS]
    prep.main(argv)
    first = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    prep.main(argv)
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == first
    assert leftovers(out) == []
    # a model that trimesh cannot read, after some meshes were written: the old manifest stays as it was
    broken = packages.parent / "broken"
    shutil.copytree(packages, broken)
    with zipfile.ZipFile(broken / "toy_wheel-1.0-py3-none-any.whl", "a") as wheel:
        wheel.writestr("toy_wheel/examples/broken.ply", b"ply\nnot really a ply file\n")
    monkeypatch.setattr(prep, "MESHES", TABLE + ((WHEEL, "toy_wheel/examples/broken.ply", "a wreck", "L"),))
    with pytest.raises(Exception) as failed:  # whatever trimesh raises for it
        prep.main(["--packages", str(broken), "--out", str(out), *ARGS])
    assert any(entry.name == "geometry" for entry in failed.traceback)  # it failed reading that model
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == first
    assert leftovers(out) == []


def test_the_table_is_well_formed() -> None:
    """Every row of the real table: a known package, a label with its article, a distinct output file."""
    assert {package for package, *_ in prep.MESHES} == set(prep.PACKAGES)
    assert len({(package, path) for package, path, *_ in prep.MESHES}) == len(prep.MESHES)
    for package, path, label, licence in prep.MESHES:
        assert label.split(" ", 1)[0] in ("a", "an") and " " in label, label
        assert path.count("!") <= 1 and licence, path
    names = [f"{label.split(' ', 1)[1]}_{Path(path).stem}" for _, path, label, _ in prep.MESHES]
    assert len(set(names)) == len(names)


def test_models_trimesh_cannot_read_need_assimp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.ac"
    model.write_text("AC3Db\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="apt-get install assimp-utils"):
        prep.geometry(model, tmp_path)


@pytest.mark.skipif(shutil.which("assimp") is None, reason="the `assimp` command is missing (apt-get install "
                                                           "assimp-utils): glTF is converted by it")
def test_gltf_with_its_buffers_is_converted_by_assimp(packages: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prep, "PACKAGES", TOY_PACKAGES)
    monkeypatch.setattr(prep, "MESHES", ((DEB, TOY + "gltf/cylinder.gltf", "a cylinder", "L"),
                                         (WHEEL, "toy_wheel/examples/torus.obj", "a torus", "L")))
    rows = prep.prepare(packages, tmp_path, min_faces=20, min_points=40)
    assert [row["source"] for row in rows] == ["meshes/cylinder_cylinder.ply", "meshes/torus_torus.ply"]
    mesh = trimesh.load(tmp_path / rows[0]["source"], process=False)
    assert isinstance(mesh, trimesh.Trimesh) and len(mesh.faces) == 64
