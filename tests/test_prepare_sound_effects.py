"""recipes/prepare_sound_effects.py on two tiny .deb packages of sound clips built here with dpkg-deb."""
from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
sys.path.insert(0, str(RECIPES))  # the script imports its sibling prepare_real_meshes, as `python recipes/...` allows
try:
    import prepare_sound_effects as prep
finally:
    sys.path.remove(str(RECIPES))

RATE = 16000
TRAIN, TEST = "toy-sounds", "toy-more-sounds"
TOY_PACKAGES = {name: (f"{name}_*.deb", f"apt-get download {name}") for name in (TRAIN, TEST)}
TOY = "usr/share/toy/sounds/"


def tone(seconds: float, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def encoded(samples: np.ndarray, file_format: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, format=file_format)
    return buffer.getvalue()


BARK = encoded(tone(1.0, 300), "WAV")
CLIPS = {  # package -> path in it -> bytes
    TRAIN: {
        TOY + "dog_bark.wav": BARK,
        TOY + "dog_bark_copy.wav": BARK,                                # the same bytes: left out
        TOY + "door_close.1.ogg": encoded(tone(0.8, 200), "OGG"),
        TOY + "door_close.2.ogg": encoded(tone(0.6, 250), "OGG"),
        TOY + "bell.aiff": encoded(tone(0.5, 880), "AIFF"),             # converted to FLAC
        TOY + "rain_silent.wav": encoded(np.zeros(RATE, np.float32), "WAV"),
        TOY + "click.wav": encoded(tone(0.1), "WAV"),                   # too short
        TOY + "ambience.wav": encoded(tone(3.0, 100), "WAV"),           # too long for --max-seconds 2
        TOY + "broken.wav": b"RIFF\x24\x00\x00\x00WAVEfmt garbage",
        TOY + "music.ogg": encoded(tone(1.0, 500), "OGG"),              # not in the table
    },
    TEST: {TOY + "woof.flac": encoded(tone(1.5, 350), "FLAC"),
           TOY + "yard/woof.flac": encoded(tone(1.0, 360), "FLAC"),    # the same file name in another folder
           TOY + "gong.oga": encoded(tone(1.2, 150), "OGG")},           # .oga is kept as .ogg
}
TABLE = (
    (TRAIN, TOY + "dog_bark*.wav", "a dog barking", "L-dog"),
    (TRAIN, TOY + "door_close.?.ogg", "a door closing", "L-door"),
    (TRAIN, TOY + "bell.aiff", "a bell", "L-bell"),
    (TRAIN, TOY + "rain_silent.wav", "rain", "L-rain"),
    (TRAIN, TOY + "click.wav", "a click", "L-click"),
    (TRAIN, TOY + "ambience.wav", "city traffic", "L-city"),
    (TRAIN, TOY + "broken.wav", "a bell", "L-broken"),
    (TEST, TOY + "*woof.flac", "a dog barking", "L-woof"),
    (TEST, TOY + "gong.oga", "a gong", "L-gong"),
)
YARD = hashlib.sha256(CLIPS[TEST][TOY + "yard/woof.flac"]).hexdigest()[:8]
ARGS = ["--min-seconds", "0.3", "--max-seconds", "2"]


def build_deb(root: Path, package: str, files: dict[str, bytes], out: Path) -> None:
    tree = root / package
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN").chmod(0o755)
    (tree / "DEBIAN" / "control").write_text(f"Package: {package}\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: Test <test@example.org>\nDescription: toy sounds\n")
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out / f"{package}_1.0_all.deb")],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with toy-sounds_1.0_all.deb and toy-more-sounds_1.0_all.deb holding ``CLIPS``."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("the dpkg-deb command is missing (Debian's dpkg)")
    root = tmp_path_factory.mktemp("sound_effects")
    out = root / "packages"
    out.mkdir()
    for package, files in CLIPS.items():
        build_deb(root, package, files, out)
    return out


@pytest.fixture
def toy_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prep, "PACKAGES", TOY_PACKAGES)
    monkeypatch.setattr(prep, "SOUNDS", TABLE)
    monkeypatch.setattr(prep, "SPLITS", {TEST: "test"})


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def snapshot(out: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}


@pytest.mark.usefixtures("toy_table")
def test_clips_captions_splits_and_skips(packages: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    prep.main(["--packages", str(packages), "--out", str(tmp_path), *ARGS])
    columns, rows = read_rows(tmp_path / "pairs.csv")
    assert columns == list(prep.COLUMNS) == ["source", "target", "split", "source_modality", "target_modality",
                                             "label", "package", "package_path", "licence"]
    assert [(row["source"], row["target"], row["split"], row["licence"]) for row in rows] == [
        ("clips/dog-barking_toy-sounds_dog-bark.wav", "the sound of a dog barking", "train", "L-dog"),
        ("clips/door-closing_toy-sounds_door-close.1.ogg", "the sound of a door closing", "train", "L-door"),
        ("clips/door-closing_toy-sounds_door-close.2.ogg", "the sound of a door closing", "train", "L-door"),
        ("clips/bell_toy-sounds_bell.flac", "the sound of a bell", "train", "L-bell"),
        ("clips/dog-barking_toy-more-sounds_woof.flac", "the sound of a dog barking", "test", "L-woof"),
        (f"clips/dog-barking_toy-more-sounds_woof-{YARD}.flac", "the sound of a dog barking", "test", "L-woof"),
        ("clips/gong_toy-more-sounds_gong.ogg", "the sound of a gong", "test", "L-gong"),
    ]
    assert {(row["source_modality"], row["target_modality"]) for row in rows} == {("audio", "text")}
    assert rows[3]["package"] == TRAIN and rows[3]["package_path"] == TOY + "bell.aiff"
    assert sorted(path.name for path in (tmp_path / "clips").iterdir()) == sorted(
        row["source"].removeprefix("clips/") for row in rows)
    # wav/ogg/flac are copied byte for byte, .oga as .ogg; the AIFF became a FLAC of the same samples
    assert (tmp_path / rows[0]["source"]).read_bytes() == BARK
    assert (tmp_path / rows[6]["source"]).read_bytes() == CLIPS[TEST][TOY + "gong.oga"]
    samples, rate = sf.read(tmp_path / rows[3]["source"], dtype="float32")
    assert sf.info(tmp_path / rows[3]["source"]).format == "FLAC" and rate == RATE
    np.testing.assert_allclose(samples, tone(0.5, 880), atol=1e-4)
    printed = capsys.readouterr().out
    for message in (f"{TOY}dog_bark_copy.wav: the same file as {TRAIN}:{TOY}dog_bark.wav",
                    f"{TOY}rain_silent.wav: audio is silent",
                    f"{TOY}click.wav: 0.10 s is outside [0.3, 2] s",
                    f"{TOY}ambience.wav: 3.00 s is outside [0.3, 2] s",
                    f"{TOY}broken.wav: not a readable audio file"):
        assert f"skipped {TRAIN}:{message}" in printed
    assert "7 clips, 4 labels" in printed
    assert "test labels also in train: 1 of 2; not in train: a gong" in printed
    assert "  a dog barking: 1/0/2" in printed


@pytest.mark.usefixtures("toy_table")
def test_a_failed_run_leaves_the_earlier_result(packages: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--packages", str(packages), "--out", str(tmp_path), *ARGS]
    prep.main(argv)
    first = snapshot(tmp_path)
    prep.main(argv)  # a rerun writes the same files
    assert snapshot(tmp_path) == first
    # a stale clip in clips/ goes with the next run: the folder is replaced as a whole
    (tmp_path / "clips" / "stale.wav").write_bytes(BARK)
    prep.main(argv)
    assert snapshot(tmp_path) == first
    # a row that matches nothing stops the run after other clips were staged: nothing changes
    monkeypatch.setattr(prep, "SOUNDS", TABLE + ((TEST, TOY + "cat_*.wav", "a cat", "L"),))
    with pytest.raises(SystemExit, match=r"no file in toy-more-sounds_1.0_all.deb matches .*cat_\*.wav"):
        prep.main(argv)
    assert snapshot(tmp_path) == first
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_a_missing_package_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="apt-get download wesnoth-1.16-data"):
        prep.prepare(tmp_path, tmp_path / "out", 0.3, 30.0)
    assert not (tmp_path / "out" / "pairs.csv").exists()


def test_the_table_is_well_formed() -> None:
    """Known packages, distinct rows, lower-case labels (an article where countable) and a licence each."""
    assert set(prep.PACKAGES) == {package for package, *_ in prep.SOUNDS}
    assert set(prep.SPLITS) <= set(prep.PACKAGES) and set(prep.SPLITS.values()) == {"val", "test"}
    assert len({(package, pattern) for package, pattern, *_ in prep.SOUNDS}) == len(prep.SOUNDS)
    for package, pattern, label, licence in prep.SOUNDS:
        assert pattern.startswith("usr/share/") and Path(pattern).suffix in (".wav", ".ogg", ".oga", ".*"), pattern
        assert label == label.strip().lower() and label and licence, (package, pattern)
    assert not [name for name in prep.PACKAGES if name.startswith("tuxpaint-stamps")]  # reserved for evaluation
    labels = {label for *_, label, _ in prep.SOUNDS}
    assert len(labels) >= 40


def test_clip_names() -> None:
    assert prep.clip_name("a dog", "pkg", "a/b/dog 2.WAV", ".wav") == "dog_pkg_dog-2.wav"
    assert prep.clip_name("an owl", "pkg", "owl.oga", ".ogg") == "owl_pkg_owl.ogg"
    assert prep.clip_name("rain", "pkg", "x/rain.1.ogg", ".ogg") == "rain_pkg_rain.1.ogg"
