"""Read Qt resource bundles (.rcc) and Qt translations (.qm) with Qt's own loaders (PySide6 only, no bind).

``recipes/prepare_photos.py`` runs this file with a Python that has PySide6 (``pip install PySide6-essentials``;
the recipe makes a throwaway venv for it when the project's Python lacks it)::

    python qt_resources.py extract OUT BUNDLE.rcc [...]    # OUT/<bundle stem>/<resource path> for every file
    python qt_resources.py translate FILE.qm < pairs.json  # [[context, source], ...] -> ["translation" or "", ...]

Nothing is started but a ``QCoreApplication``: no display is needed.
"""
from __future__ import annotations

import json
import os
import sys


def _app():
    from PySide6.QtCore import QCoreApplication

    return QCoreApplication.instance() or QCoreApplication([])


def extract(out: str, bundles: list[str]) -> int:
    """Copy every file of each bundle to ``out/<bundle stem>/``; the number of files written."""
    from PySide6.QtCore import QDirIterator, QFile, QFileInfo, QResource

    _app()
    written = 0
    for bundle in bundles:
        root = "/bind_rcc"
        if not QResource.registerResource(bundle, root):
            raise SystemExit(f"Qt could not read the resource bundle {bundle}")
        try:
            iterator = QDirIterator(":" + root, QDirIterator.IteratorFlag.Subdirectories)
            while iterator.hasNext():
                path = iterator.next()
                if not QFileInfo(path).isFile():
                    continue
                handle = QFile(path)
                if not handle.open(QFile.OpenModeFlag.ReadOnly):
                    raise SystemExit(f"cannot open {path} in {bundle}")
                data = bytes(handle.readAll().data())
                handle.close()
                relative = path[len(":" + root) + 1:]
                target = os.path.join(out, os.path.basename(bundle).removesuffix(".rcc"), *relative.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as file:
                    file.write(data)
                written += 1
        finally:
            QResource.unregisterResource(bundle, root)
    return written


def translate(qm: str, pairs: list[list[str]]) -> list[str]:
    """The translation of each (context, source text) pair, "" where the .qm file has none."""
    from PySide6.QtCore import QTranslator

    _app()
    translator = QTranslator()
    if not translator.load(qm):
        raise SystemExit(f"Qt could not load the translation file {qm}")
    return [translator.translate(context, source) or "" for context, source in pairs]


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "extract":
        print(extract(argv[1], argv[2:]))
    elif len(argv) == 2 and argv[0] == "translate":
        json.dump(translate(argv[1], json.load(sys.stdin)), sys.stdout, ensure_ascii=False)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
