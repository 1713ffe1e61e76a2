"""Paired audio-text data reachable offline: real sound clips from Debian packages whose names say what they are.

Games and desktop sound themes ship recordings named after what makes the sound (``dog2.wav``,
``default_gravel_footstep.1.ogg``, ``carhorn3.wav``). Every row of ``SOUNDS`` is chosen by hand: a glob over
one package's file names, the label it earns (a short noun phrase) and the licence the package's
``debian/copyright`` states for those files. Vague names (``click.wav``, ``sound017.wav``), music, speech
and fantasy creatures are not in the table. The caption is "the sound of <label>". The script leaves out,
with a message, a clip that bind cannot read or finds silent (``bind.io.audio.load_audio``), one shorter
than ``--min-seconds`` or longer than ``--max-seconds``, and one with the same bytes as an earlier clip.
The split goes by package (``SPLITS``; the rest is train), so val and test clips come from recordings
made by other people than the training clips. The Debian ``tuxpaint-stamps-*`` packages are reserved for
evaluation and are never read here. The packages are downloaded, not installed (660 MB)::

    mkdir -p data/sound_effects/packages && cd data/sound_effects/packages
    apt-get download wesnoth-1.16-data scorched3d-data minetest-data supertux-data \\
        hedgewars-data warmux-data lincity-ng-data freeciv-data tuxpaint-data tuxmath-data \\
        sound-theme-freedesktop frozen-bubble-data pingus-data
    cd -
    PYTHONPATH=. python recipes/prepare_sound_effects.py [--packages data/sound_effects/packages] [--out data/sound_effects]

Writes ``OUT/clips/<label>_<package>_<name>.{wav,ogg,flac}`` (wav/ogg/flac copied as they are, ``.oga``
as ``.ogg``, other formats converted to FLAC) and ``OUT/pairs.csv`` with the columns ``COLUMNS``.
Both are written atomically: a failed run leaves an earlier result as it was.
"""
from __future__ import annotations

import argparse
import collections
import csv
import fnmatch
import hashlib
import re
import shutil
import tempfile
from pathlib import Path

import soundfile as sf
from prepare_real_meshes import package_file, unpack

from bind.errors import InputError
from bind.io.atomic import atomic_dir, atomic_path
from bind.io.audio import load_clip

COLUMNS = ("source", "target", "split", "source_modality", "target_modality", "label", "package",
           "package_path", "licence")
CAPTION = "the sound of {}"
COPY = {".wav": ".wav", ".ogg": ".ogg", ".oga": ".ogg", ".flac": ".flac"}  # kept as they are; others -> FLAC
# package -> split; packages not named here are train
SPLITS = {"scorched3d-data": "test", "supertux-data": "val"}
PACKAGE_NAMES = ("wesnoth-1.16-data", "scorched3d-data", "minetest-data",
                 "supertux-data", "hedgewars-data", "warmux-data", "lincity-ng-data", "freeciv-data",
                 "tuxpaint-data", "tuxmath-data", "sound-theme-freedesktop", "frozen-bubble-data", "pingus-data")
# package -> (file name pattern in --packages, how to get it)
PACKAGES = {name: (f"{name}_*.deb", f"apt-get download {name}") for name in PACKAGE_NAMES}

WES = "usr/share/games/wesnoth/1.16/data/core/sounds/"
S3A = "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/"
S3 = "usr/share/games/scorched3d/data/globalmods/none/data/wav/"
MT = "usr/share/games/minetest/games/minetest_game/mods/"
STX = "usr/share/games/supertux2/sounds/"
HW = "usr/share/games/hedgewars/Data/Sounds/"
WMX = "usr/share/games/warmux/sound/default/"
LC = "usr/share/games/lincity-ng/sounds/"
FC = "usr/share/games/freeciv/stdsounds/"
FD = "usr/share/sounds/freedesktop/stereo/"
GPL2_WES = "GPL-2+ (Debian copyright of wesnoth-1.16-data)"
GPL2_S3 = "GPL-2+ (Debian copyright of scorched3d-data)"
CCBYSA_S3 = "CC-BY-SA-3.0 (Apocalypse mod team; Debian copyright of scorched3d-data)"
CCBYSA_MT = "CC-BY-SA-3.0 (Minetest sounds; Debian copyright of minetest-data)"
CCBY_MT = "CC-BY-3.0 (Minetest doors mod sounds; Debian copyright of minetest-data)"
CC0_MT = "CC0-1.0 (Debian copyright of minetest-data)"
GPL3_STX = "GPL-3+ (Debian copyright of supertux-data)"
GFDL_HW = "GFDL-1.3 (hedgewars Data/Sounds; Debian copyright of hedgewars-data)"
CCBYSA_HW = "CC-BY-SA-3.0 (saugox, freesound.org; Debian copyright of hedgewars-data)"
GPL2_WMX = "GPL-2+ (Debian copyright of warmux-data)"
GPL2_LC = "GPL-2+ (Debian copyright of lincity-ng-data)"
GPL2_FC = "GPL-2+ (Debian copyright of freeciv-data)"
GPL2_TPD = "GPL-2+ (Debian copyright of tuxpaint-data)"
PD_TM = "public domain (tuxmath data/sounds; Debian copyright of tuxmath-data)"
GPL2_FB = "GPL-2 (Debian copyright of frozen-bubble-data)"
GPL2_PG = "GPL-2+ (Debian copyright of pingus-data)"


def _fd(files: str) -> str:
    return f"{files} (sound-theme-freedesktop, Debian copyright)"


# (package, fnmatch pattern of paths in the package, label, licence); read top to bottom
SOUNDS: tuple[tuple[str, str, str, str], ...] = (
    ("wesnoth-1.16-data", WES + "ambient/birds?.ogg", "birds chirping", GPL2_WES),
    ("wesnoth-1.16-data", WES + "ambient/campfire.ogg", "a fire crackling", GPL2_WES),
    ("wesnoth-1.16-data", WES + "bow.ogg", "a bow shooting an arrow", GPL2_WES),
    ("wesnoth-1.16-data", WES + "crossbow.ogg", "a bow shooting an arrow", GPL2_WES),
    ("wesnoth-1.16-data", WES + "explosion.ogg", "an explosion", GPL2_WES),
    ("wesnoth-1.16-data", WES + "gunshot.wav", "a gunshot", GPL2_WES),
    ("wesnoth-1.16-data", WES + "horse-canter.wav", "a horse galloping", GPL2_WES),
    ("wesnoth-1.16-data", WES + "horse-elf-canter.wav", "a horse galloping", GPL2_WES),
    ("wesnoth-1.16-data", WES + "horn-signals/horn-?.ogg", "a horn", GPL2_WES),
    ("wesnoth-1.16-data", WES + "lightning.ogg", "thunder", GPL2_WES),
    ("wesnoth-1.16-data", WES + "wolf-growl-?.ogg", "a wolf", GPL2_WES),
    ("wesnoth-1.16-data", WES + "dwarf-laugh.wav", "laughter", GPL2_WES),
    ("wesnoth-1.16-data", "usr/share/games/wesnoth/1.16/data/campaigns/World_Conquest/sounds/witches-laugh.wav",
     "laughter", GPL2_WES),
    ("wesnoth-1.16-data", WES + "fuse.ogg", "a burning fuse", GPL2_WES),
    ("wesnoth-1.16-data", "usr/share/games/wesnoth/1.16/sounds/bell.wav", "a bell", GPL2_WES),
    ("scorched3d-data", S3A + "misc/carhorn?.wav", "a car horn", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/cessna.wav", "an airplane flying", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/cheeringloop.wav", "a crowd cheering", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/citysounds.wav", "city traffic", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/cows.wav", "a cow", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/moo.wav", "a cow", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/dog*.wav", "a dog", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/firetruck.wav", "a siren", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/policecar.wav", "a siren", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/helicopter.wav", "a helicopter", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/rooster.wav", "a rooster", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/scream*.wav", "a person screaming", CCBYSA_S3),
    ("scorched3d-data", S3A + "misc/sheep.wav", "a sheep", CCBYSA_S3),
    ("scorched3d-data", S3A + "explosions/bees.wav", "a bee", CCBYSA_S3),
    ("scorched3d-data", S3A + "explosions/exp.wav", "an explosion", CCBYSA_S3),
    ("scorched3d-data", S3A + "explosions/thunder.wav", "thunder", CCBYSA_S3),
    ("scorched3d-data", S3A + "shoot/machinegun.wav", "a machine gun", CCBYSA_S3),
    ("scorched3d-data", S3A + "shoot/shotgun.wav", "a shotgun", CCBYSA_S3),
    ("scorched3d-data", S3 + "explosions/*large.wav", "an explosion", GPL2_S3),  # large, xlarge
    ("scorched3d-data", S3 + "explosions/medium.wav", "an explosion", GPL2_S3),
    ("scorched3d-data", S3 + "explosions/small.wav", "an explosion", GPL2_S3),
    ("scorched3d-data", S3 + "misc/apache_1.wav", "a helicopter", GPL2_S3),
    ("scorched3d-data", S3 + "misc/bird*.wav", "birds chirping", GPL2_S3),  # birdchirp1-6, birds1-2
    ("scorched3d-data", S3 + "misc/f1[68]_?.wav", "a jet plane", GPL2_S3),
    ("scorched3d-data", S3 + "misc/jet.wav", "a jet plane", GPL2_S3),
    ("scorched3d-data", S3 + "misc/t38.wav", "a jet plane", GPL2_S3),
    ("scorched3d-data", S3 + "misc/frogs.wav", "a frog", GPL2_S3),
    ("scorched3d-data", S3 + "misc/gull?.wav", "a seagull", GPL2_S3),
    ("scorched3d-data", S3 + "misc/oceanwaves.wav", "ocean waves", GPL2_S3),
    ("scorched3d-data", S3 + "misc/rain.wav", "rain", GPL2_S3),
    ("scorched3d-data", S3 + "misc/splash.wav", "a splash", GPL2_S3),
    ("scorched3d-data", S3 + "misc/thunder*.wav", "thunder", GPL2_S3),
    ("scorched3d-data", S3 + "misc/wolf.wav", "a wolf", GPL2_S3),
    ("minetest-data", MT + "default/sounds/default_break_glass.?.ogg", "glass breaking", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_gravel_footstep.?.ogg", "footsteps on gravel", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_snow_footstep.?.ogg", "footsteps in snow", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_wood_footstep.?.ogg", "footsteps on wood", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_sand_footstep.?.ogg", "footsteps on sand", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_grass_footstep.?.ogg", "footsteps on grass", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_water_footstep.?.ogg", "footsteps in water", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_hard_footstep.?.ogg", "footsteps", CCBYSA_MT),
    ("minetest-data", MT + "default/sounds/default_metal_footstep.?.ogg", "footsteps on metal", CCBYSA_MT),
    ("minetest-data", MT + "doors/sounds/doors_door_open.ogg", "a door opening", CCBY_MT),
    ("minetest-data", MT + "doors/sounds/doors_steel_door_open.ogg", "a door opening", CCBY_MT),
    ("minetest-data", MT + "doors/sounds/doors_glass_door_open.ogg", "a door opening", CC0_MT),
    ("minetest-data", MT + "doors/sounds/doors_door_close.ogg", "a door closing", CCBY_MT),
    ("minetest-data", MT + "doors/sounds/doors_steel_door_close.ogg", "a door closing", CCBY_MT),
    ("minetest-data", MT + "doors/sounds/doors_glass_door_close.ogg", "a door closing", CC0_MT),
    ("minetest-data", MT + "env_sounds/sounds/env_sounds_water.?.ogg", "flowing water", CCBYSA_MT),
    ("minetest-data", MT + "fire/sounds/fire_fire.?.ogg", "a fire crackling", CCBYSA_MT),
    ("minetest-data", MT + "fire/sounds/fire_large.ogg", "a fire crackling", CCBYSA_MT),
    ("minetest-data", MT + "fire/sounds/fire_small.ogg", "a fire crackling", CCBYSA_MT),
    ("minetest-data", MT + "tnt/sounds/tnt_explode.ogg", "an explosion", CC0_MT),
    ("minetest-data", MT + "tnt/sounds/tnt_gunpowder_burning.ogg", "a burning fuse", CC0_MT),
    ("supertux-data", STX + "explosion.wav", "an explosion", GPL3_STX),
    ("supertux-data", STX + "rain.wav", "rain", GPL3_STX),
    ("supertux-data", STX + "thunder.wav", "thunder", GPL3_STX),
    ("supertux-data", STX + "lightning.wav", "thunder", GPL3_STX),
    ("supertux-data", STX + "fireworks.wav", "fireworks", GPL3_STX),
    ("supertux-data", STX + "splash.*", "a splash", GPL3_STX),  # .ogg and .wav
    ("supertux-data", STX + "waterfall.wav", "flowing water", GPL3_STX),
    ("supertux-data", STX + "phone.wav", "a phone ringing", GPL3_STX),
    ("supertux-data", STX + "savebell2.wav", "a bell", GPL3_STX),
    ("hedgewars-data", HW + "Whistle.ogg", "a whistle", GFDL_HW),
    ("hedgewars-data", HW + "Kiss.ogg", "a kiss", GFDL_HW),
    ("hedgewars-data", HW + "bee.ogg", "a bee", GFDL_HW),
    ("hedgewars-data", HW + "blowtorch.ogg", "a blowtorch", GFDL_HW),
    ("hedgewars-data", HW + "explosion.ogg", "an explosion", GFDL_HW),
    ("hedgewars-data", HW + "hammer.ogg", "a hammer", GFDL_HW),
    ("hedgewars-data", HW + "minigun.ogg", "a machine gun", GFDL_HW),
    ("hedgewars-data", HW + "pickhammer.ogg", "a jackhammer", GFDL_HW),
    ("hedgewars-data", HW + "plane.ogg", "an airplane flying", GFDL_HW),
    ("hedgewars-data", HW + "shotgunfire.ogg", "a shotgun", GFDL_HW),
    ("hedgewars-data", HW + "splash.ogg", "a splash", GFDL_HW),
    ("hedgewars-data", HW + "steam.ogg", "steam hissing", GFDL_HW),
    ("hedgewars-data", HW + "steps.ogg", "footsteps", GFDL_HW),
    ("hedgewars-data", HW + "whipcrack.ogg", "a whip cracking", GFDL_HW),
    ("hedgewars-data", HW + "shutterclick.ogg", "a camera shutter", GFDL_HW),
    ("hedgewars-data", HW + "Droplet?.ogg", "water dripping", CCBYSA_HW),
    ("warmux-data", WMX + "weapons/explosion?.ogg", "an explosion", GPL2_WMX),
    ("warmux-data", WMX + "weapons/dynamite_exp.ogg", "an explosion", GPL2_WMX),
    ("warmux-data", WMX + "weapons/dynamite_fuze.ogg", "a burning fuse", GPL2_WMX),
    ("warmux-data", WMX + "weapons/shotgun.ogg", "a shotgun", GPL2_WMX),
    ("warmux-data", WMX + "weapons/m16.ogg", "a machine gun", GPL2_WMX),
    ("warmux-data", WMX + "weapons/aircraft_flying.ogg", "an airplane flying", GPL2_WMX),
    ("warmux-data", WMX + "weapons/airhammer_used.ogg", "a jackhammer", GPL2_WMX),
    ("warmux-data", WMX + "weapons/blowtorch.ogg", "a blowtorch", GPL2_WMX),
    ("warmux-data", WMX + "weapons/slap.ogg", "a slap", GPL2_WMX),
    ("warmux-data", WMX + "misc/step.ogg", "footsteps", GPL2_WMX),
    ("lincity-ng-data", LC + "RailTrain?.wav", "a train", GPL2_LC),
    ("lincity-ng-data", LC + "Blacksmith?.wav", "a blacksmith hammering", GPL2_LC),
    ("lincity-ng-data", LC + "SportsCroud?.wav", "a crowd cheering", GPL2_LC),
    ("lincity-ng-data", LC + "TraficHigh?.wav", "city traffic", GPL2_LC),
    ("lincity-ng-data", LC + "School?.wav", "children playing", GPL2_LC),
    ("lincity-ng-data", LC + "Fire?.wav", "a fire crackling", GPL2_LC),
    ("lincity-ng-data", LC + "RocketTakeoff1.wav", "a rocket launch", GPL2_LC),
    ("lincity-ng-data", LC + "RocketExplosion1.wav", "an explosion", GPL2_LC),
    ("lincity-ng-data", LC + "Water?.wav", "flowing water", GPL2_LC),
    ("freeciv-data", FC + "*Expl.ogg", "an explosion", GPL2_FC),  # LrgExpl, SmlExpl
    ("freeciv-data", FC + "Splash.ogg", "a splash", GPL2_FC),
    ("freeciv-data", FC + "foot3.ogg", "footsteps", GPL2_FC),
    ("freeciv-data", FC + "MgBar?.ogg", "a machine gun", GPL2_FC),
    ("freeciv-data", FC + "*Can.ogg", "a cannon firing", GPL2_FC),  # LrgCan, MedCan
    ("freeciv-data", FC + "woodbrk.ogg", "wood breaking", GPL2_FC),
    ("tuxpaint-data", "usr/share/tuxpaint/sounds/giggle.wav", "laughter", GPL2_TPD),
    ("tuxpaint-data", "usr/share/tuxpaint/sounds/harp.wav", "a harp", GPL2_TPD),
    ("tuxpaint-data", "usr/share/tuxpaint/sounds/typewriterbell.wav", "a typewriter", GPL2_TPD),
    ("tuxmath-data", "usr/share/tuxmath/sounds/cheer.wav", "a crowd cheering", PD_TM),
    ("tuxmath-data", "usr/share/tuxmath/sounds/explosion.wav", "an explosion", PD_TM),
    ("tuxmath-data", "usr/share/tuxmath/sounds/towerclock.wav", "a clock chiming", PD_TM),
    ("tuxmath-data", "usr/share/tuxmath/sounds/alarm.wav", "an alarm", PD_TM),
    ("sound-theme-freedesktop", FD + "alarm-clock-elapsed.oga", "an alarm clock",
     _fd("CC-BY-SA-3.0, Tim/corsica_s")),
    ("sound-theme-freedesktop", FD + "bell.oga", "a bell", _fd("CC-BY-3.0, Dr. Richard Boulanger et al")),
    ("sound-theme-freedesktop", FD + "camera-shutter.oga", "a camera shutter",
     _fd("CC-BY-SA-3.0, freesound user horsthorstensen")),
    ("sound-theme-freedesktop", FD + "phone-incoming-call.oga", "a phone ringing", _fd("GPL-2+, Damien Sandras")),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd/applause.ogg", "applause", GPL2_FB),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd/snore.ogg", "snoring", GPL2_FB),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd/typewriter.ogg", "a typewriter", GPL2_FB),
    ("pingus-data", "usr/share/games/pingus/data/sounds/splash.wav", "a splash", GPL2_PG),
)


def clip_name(label: str, package: str, path: str, suffix: str) -> str:
    """``<label>_<package>_<file stem><suffix>`` with the label's article dropped, file-name safe."""
    words = label.split(" ")
    label = "-".join(words[1:] if words[0] in ("a", "an") and len(words) > 1 else words)
    stem = re.sub(r"[^A-Za-z0-9.-]+", "-", Path(path).name[:-len(Path(path).suffix)])
    return f"{label}_{package}_{stem}{suffix}"


def write_clip(source: Path, samples, rate: int, target: Path) -> None:
    """Copy a wav/ogg/flac file; write any other format as FLAC from its decoded ``[channels, time]`` samples."""
    if source.suffix.lower() in COPY:
        shutil.copyfile(source, target)
    else:
        sf.write(target, samples.T, rate, format="FLAC")


def prepare(packages: Path, out: Path, min_seconds: float, max_seconds: float,
            only: set[str] | None = None) -> list[dict[str, object]]:
    """Extract, check and write every clip the rows of ``SOUNDS`` match (of the ``only`` packages, when
    given); the manifest rows, in table order."""
    rows, skipped, seen = [], [], {}
    with tempfile.TemporaryDirectory() as scratch, atomic_dir(out / "clips") as clips:
        for package in dict.fromkeys(name for name, *_ in SOUNDS if not only or name in only):
            table = [(pattern, label, licence) for name, pattern, label, licence in SOUNDS if name == package]
            archive = package_file(packages, package, PACKAGES)
            into = Path(scratch) / package
            unpack(archive, set(), into, patterns=tuple(pattern for pattern, _, _ in table))
            files = sorted(path.relative_to(into).as_posix() for path in into.rglob("*") if path.is_file())
            print(f"{package}: {len(files)} files for {len(table)} rows from {archive.name}", flush=True)
            for pattern, label, licence in table:
                matched = [path for path in files if fnmatch.fnmatchcase(path, pattern)]
                if not matched:
                    raise SystemExit(f"no file in {archive.name} matches {pattern} (label {label!r})")
                for path in matched:
                    source = into / path
                    digest = hashlib.sha256(source.read_bytes()).hexdigest()
                    if digest in seen:
                        skipped.append(f"{package}:{path}: the same file as {seen[digest]}")
                        continue
                    seen[digest] = f"{package}:{path}"
                    try:
                        wave = load_clip(source, min_seconds, max_seconds)
                    except InputError as error:
                        skipped.append(f"{package}:{path}: {error.reason}")
                        continue
                    seconds = wave.samples.shape[1] / wave.sample_rate
                    name = clip_name(label, package, path, COPY.get(source.suffix.lower(), ".flac"))
                    if (clips / name).exists():  # the same file name in another folder of the package
                        name = clip_name(label, package, f"{Path(path).stem}-{digest[:8]}{Path(path).suffix}",
                                         Path(name).suffix)
                    write_clip(source, wave.samples, wave.sample_rate, clips / name)
                    rows.append({"source": f"clips/{name}", "target": CAPTION.format(label),
                                 "split": SPLITS.get(package, "train"), "source_modality": "audio",
                                 "target_modality": "text", "label": label, "package": package,
                                 "package_path": path, "licence": licence, "seconds": seconds})
            shutil.rmtree(into)
        for reason in skipped:
            print(f"skipped {reason}")
        if not rows:
            raise SystemExit("no clip passed the checks; nothing written")
        with atomic_path(out / "pairs.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return rows


def summary(rows: list[dict[str, object]]) -> str:
    """Clips, labels and hours per split, each label's counts per split and the labels splits share."""
    splits = ("train", "val", "test")
    counts = {split: collections.Counter(row["label"] for row in rows if row["split"] == split) for split in splits}
    seconds = sum(float(row["seconds"]) for row in rows)
    lines = [f"{len(rows)} clips, {len({row['label'] for row in rows})} labels, {seconds / 60:.1f} min in all"]
    for split in splits:
        clips = sum(counts[split].values())
        minutes = sum(float(row["seconds"]) for row in rows if row["split"] == split) / 60
        packages = sorted({str(row["package"]) for row in rows if row["split"] == split})
        lines.append(f"{split}: {clips} clips, {len(counts[split])} labels, {minutes:.1f} min ({', '.join(packages)})")
    for split in ("val", "test"):
        shared = set(counts[split]) & set(counts["train"])
        lines.append(f"{split} labels also in train: {len(shared)} of {len(counts[split])}; "
                     f"not in train: {', '.join(sorted(set(counts[split]) - shared)) or 'none'}")
    lines.append("label: train/val/test")
    labels = sorted({row["label"] for row in rows}, key=lambda label: (-sum(c[label] for c in counts.values()), label))
    lines.extend(f"  {label}: {'/'.join(str(counts[split][label]) for split in splits)}" for label in labels)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", type=Path, default=Path("data/sound_effects/packages"),
                        help="folder with the downloaded .deb files")
    parser.add_argument("--out", type=Path, default=Path("data/sound_effects"))
    parser.add_argument("--min-seconds", type=float, default=0.3, help="shorter clips are left out")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longer clips are left out")
    parser.add_argument("--only", nargs="+", choices=PACKAGE_NAMES, metavar="PACKAGE",
                        help="only these packages (e.g. the val and test ones: supertux-data scorched3d-data)")
    args = parser.parse_args(argv)
    rows = prepare(args.packages, args.out, args.min_seconds, args.max_seconds, set(args.only or ()))
    print(summary(rows))
    print(f"-> {args.out / 'pairs.csv'}")


if __name__ == "__main__":
    main()
