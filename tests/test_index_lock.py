"""One writer at a time per index folder: a second build waits or fails naming the holder; nothing is lost."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bind
from bind.errors import IndexLockedError

HOLD = ("import sys, time\nfrom bind.index.storage import writer_lock\n"
        "with writer_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n")


def hold(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process holding ``folder``'s writer lock for ``seconds`` (returns once it holds it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def notes(folder: Path, count: int, topic: str) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"{topic}-{i}.txt").write_text(f"a note about {topic} number {i}")
    return folder


@pytest.fixture(scope="module")
def space() -> bind.Space:
    return bind.AnchorSpace({"text": "minilm-l6.text"})


def test_a_second_writer_fails_naming_the_holder_or_waits_for_it(tmp_path, space) -> None:
    folder, out = notes(tmp_path / "a", 2, "boats"), tmp_path / "idx"
    holder = hold(out, 3.0)
    try:
        with pytest.raises(IndexLockedError, match=rf"being written by pid {holder.pid} on .*--wait SECONDS"):
            bind.Index.build_from_folder(folder, space, out=out)
        index, _ = bind.Index.build_from_folder(folder, space, out=out, wait=30)  # waits for the holder
        assert len(index) == 2 and holder.wait(timeout=30) == 0  # it got the lock once the holder let go
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_writer_leaves_no_lock_behind(tmp_path, space, caplog) -> None:
    folder, out = notes(tmp_path / "a", 2, "boats"), tmp_path / "idx"
    holder = hold(out, 60.0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with caplog.at_level(logging.WARNING, logger="bind.index"):
        index, _ = bind.Index.build_from_folder(folder, space, out=out)
    assert len(index) == 2
    assert f"earlier writer (pid {holder.pid}" in caplog.text


@pytest.mark.slow
def test_two_concurrent_builds_into_one_index_keep_every_item(tmp_path, space) -> None:
    saved = space.save(tmp_path / "space")
    out = tmp_path / "idx"
    folders = [notes(tmp_path / "a", 4, "boats"), notes(tmp_path / "b", 5, "trains")]
    command = [sys.executable, "-m", "bind.apps.cli", "index", "build", "--space", str(saved), "--out", str(out),
               "--wait", "120", "--quiet"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    runs = [subprocess.Popen([*command[:5], str(f), *command[5:]], env=env, stderr=subprocess.PIPE, text=True)
            for f in folders]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert len(bind.Index.load(out)) == 9  # without the lock, the later save dropped the other build's items
    assert (out / ".writer.lock").read_text() == ""


@pytest.mark.slow
def test_a_build_killed_midway_leaves_a_whole_index_and_a_rerun_completes(tmp_path, space) -> None:
    saved, out = space.save(tmp_path / "space"), tmp_path / "idx"
    folder = notes(tmp_path / "a", 40, "boats")
    bind.Index.build_from_folder(folder, space, out=out)
    for i in range(40):
        (folder / f"trains-{i}.txt").write_text(f"a note about trains number {i}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.Popen([sys.executable, "-m", "bind.apps.cli", "index", "build", str(folder), "--space",
                            str(saved), "--out", str(out), "--quiet"], env=env, stderr=subprocess.DEVNULL)
    lock = out / ".writer.lock"
    for _ in range(600):  # until it holds the lock (its note is written), then a moment into its work
        if run.poll() is None and lock.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    run.kill()  # SIGKILL: no cleanup of any kind
    run.wait()
    assert len(bind.Index.load(out)) in (40, 80)  # the previous version, or the new one if it was saved
    index, _ = bind.Index.build_from_folder(folder, space, out=out)
    assert len(index) == 80 and len(bind.Index.load(out, verify=True)) == 80
