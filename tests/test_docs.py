"""The documentation runs: every code block of README.md and docs/ is executed as written, and every public
name has a docstring (the API reference is generated from them).

Rules for a page's fenced blocks (a fence without a language fails the check, so no block goes unrun by
accident):
- ``python`` blocks run in page order in one namespace per page;
- ``bash`` blocks run with ``bash -euo pipefail`` after ``enable -n bind`` (bash has a ``bind`` builtin that
  shadows the command line; the README says so), ``bind`` being this checkout's command line;
- each page runs in its own process, in a fresh temporary folder holding links to the project's ``assets/``
  (sample media) and ``recipes/``;
- ``text``, ``yaml``, ``json`` and ``toml`` blocks are shown, not run (command synopses, file contents);
- a block preceded by ``<!-- skip: REASON -->`` is not run; each skipped block is reported as a skipped test.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bind

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"python", "bash"}
SHOWN = {"text", "yaml", "json", "toml"}
LINKED = ("assets", "recipes")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)[^\n]*\n(?P<body>.*?)^(?P=indent)```\s*$", re.M | re.S)
SKIP = re.compile(r"<!--\s*skip:\s*(?P<reason>.+?)\s*-->\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: its page, 1-based line, language, code and skip reason (None: it runs)."""

    page: Path
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines())
        found.append(Block(page, text.count("\n", 0, match.start()) + 1, match["lang"].lower(), code,
                           skip["reason"] if skip else None))
    return found


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


SKIPPED = [b for page in PAGES for b in blocks(page) if b.skip and b.lang in RUN]


def test_every_block_names_a_known_language() -> None:
    unknown = [f"{b.where}: {b.lang or '(none)'}" for page in PAGES for b in blocks(page) if b.lang not in RUN | SHOWN]
    assert not unknown, f"fenced blocks must be one of {sorted(RUN | SHOWN)}: {unknown}"


def run_page(page: Path, folder: Path) -> None:
    """Run a page's blocks in order in ``folder`` (which gets links to assets/ and recipes/); the first failing
    block raises, naming its page and line."""
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    os.chdir(folder)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for block in blocks(page):
        if block.lang not in RUN or block.skip:
            continue
        print(f"--- {block.where} ({block.lang})", flush=True)
        if block.lang == "python":
            exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - the page's own example
        else:
            # bash's own `bind` builtin (readline key bindings) shadows the command: off, as the README says
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", "enable -n bind\n" + block.code], cwd=folder,
                                  env=env)
            if done.returncode:
                raise AssertionError(f"{block.where}: the shell example exited with {done.returncode}")


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if any(b.lang in RUN and not b.skip for b in blocks(p))],
                         ids=_page_id)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    """Each page runs in its own process, so its registrations and loaded models stay its own."""
    done = subprocess.run([sys.executable, __file__, str(page), str(tmp_path)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    assert done.returncode == 0, f"{_page_id(page)}: an example failed\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_skipped_blocks_are_reported(block: Block) -> None:
    pytest.skip(f"{block.where} ({block.lang}) not run: {block.skip}")


def test_skip_markers_say_why() -> None:
    assert all(b.skip.strip() for b in SKIPPED)
    assert len(SKIPPED) <= 8, f"keep skipped examples few: {[b.where for b in SKIPPED]}"


# --- docstrings: the API reference is generated from them ---------------------------------------------------

PUBLIC_MODULES = ["bind"] + [f"bind.{m.name}" for m in pkgutil.iter_modules(bind.__path__) if not m.name.startswith("_")]


def public_names(module) -> list[str]:
    """A module's ``__all__``, else the classes and functions it defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", "").startswith(module.__name__)]


def undocumented() -> list[str]:
    """Public modules, classes, functions, methods and properties of bind that have no docstring.

    A method or property counts as documented when the one it overrides in a base class is; methods
    inherited from other libraries (``torch.nn.Module.forward``) are theirs to document."""
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            missing.append(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            if not (value.__doc__ or "").strip():
                missing.append(f"{module_name}.{name}")
            if not inspect.isclass(value):
                continue
            for attribute in dir(value):
                if attribute.startswith("_"):
                    continue
                owner = next(c for c in value.__mro__ if attribute in vars(c))
                static = vars(owner)[attribute]
                if not owner.__module__.startswith("bind") or not (
                        inspect.isfunction(static) or isinstance(static, (property, classmethod, staticmethod))):
                    continue
                if not any(_doc(vars(c)[attribute]) for c in value.__mro__ if attribute in vars(c)):
                    missing.append(f"{owner.__module__}.{owner.__qualname__}.{attribute}")
    return sorted(set(missing))


def _doc(attribute) -> str:
    function = attribute.fget if isinstance(attribute, property) else getattr(attribute, "__func__", attribute)
    return (getattr(function, "__doc__", None) or "").strip()


def test_every_public_name_has_a_docstring() -> None:
    missing = undocumented()
    assert not missing, f"{len(missing)} public name(s) without a docstring:\n" + "\n".join(missing)


if __name__ == "__main__":  # python tests/test_docs.py PAGE FOLDER: one page's examples (test_page_examples_run)
    run_page(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
