"""fs: only a regular file is ever replaced, an unwritable directory is named before any write, and a group
of outputs is replaced together or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cleanroom import fs
from cleanroom.errors import ConfigError, InputError, OutputPathError


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return fifo


def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path) -> None:
    """Renamed over, the FIFO would become a regular file (as root, /dev/null would, machine-wide)."""
    fifo = _fifo(tmp_path)
    with pytest.raises(OutputPathError, match=r"fifo: is a FIFO \(named pipe\), not a regular file; .*pass a file path"):
        fs.atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]  # no temp file left behind


def test_a_symlink_to_a_device_is_refused_before_anything_is_written(tmp_path) -> None:
    """The check follows the link: /dev/null itself is never opened for writing, only examined."""
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    with pytest.raises(OutputPathError, match=r"--out .*null: is a character device, not a regular file"):
        fs.check_output_path(link, "--out")
    with pytest.raises(OutputPathError, match="is a character device"):
        fs.atomic_write_bytes(link, b"x")
    assert link.is_symlink() and os.readlink(link) == os.devnull
    with pytest.raises(OutputPathError, match="is a character device"):  # examined with stat, no write attempted
        fs.check_output_path(os.devnull)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_symlink_loop_is_named_as_such(tmp_path) -> None:
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    with pytest.raises(OutputPathError, match="l1: is a symlink loop"):
        fs.atomic_write_bytes(tmp_path / "l1", b"x")
    with pytest.raises(InputError, match=r"--responses .*l1: is a symlink loop"):  # an input, before it is read
        fs.check_outputs({"--out": tmp_path / "v.jsonl"}, {"--responses": tmp_path / "l1"})


def test_a_parent_that_is_a_file_is_named_not_the_temp_file(tmp_path) -> None:
    (tmp_path / "f").write_text("x\n")
    with pytest.raises(OutputPathError, match=r"--summary .*f/s.json: .*/f is a file, so nothing can be written under"):
        fs.check_outputs({"--summary": tmp_path / "f" / "s.json"}, {})
    with pytest.raises(OutputPathError, match=r"f is a file"):
        fs.atomic_write_bytes(tmp_path / "f" / "s.json", b"x")
    assert (tmp_path / "f").read_text() == "x\n"


def test_an_unwritable_directory_is_named_before_any_write(tmp_path, monkeypatch) -> None:
    """os.access stands in for a read-only directory (as root every directory is writable)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro and real(p, mode))
    with pytest.raises(OutputPathError, match=r"--out .*ro/v.jsonl: directory .*/ro is not writable; make it writable"):
        fs.check_outputs({"--out": ro / "v.jsonl"}, {})
    with pytest.raises(OutputPathError, match="is not writable") as exc:  # the nearest existing ancestor is checked
        fs.atomic_write_bytes(ro / "new" / "v.jsonl", b"x")
    assert ".tmp" not in str(exc.value) and list(ro.iterdir()) == []
    assert isinstance(exc.value, OSError)  # what the write would have raised: a cache that skips OSError skips it


def test_missing_directories_are_still_created(tmp_path) -> None:
    fs.atomic_write_bytes(tmp_path / "a" / "b" / "f.json", b"{}\n")
    assert (tmp_path / "a" / "b" / "f.json").read_bytes() == b"{}\n"


def test_a_group_replaces_nothing_when_a_later_write_fails(tmp_path, monkeypatch) -> None:
    """The first output is written to a temp file; the second write fails; the first target keeps its old bytes."""
    first, second = tmp_path / "v.jsonl", tmp_path / "s.json"
    first.write_text("old\n")
    real = fs._write_temp

    def failing(target: Path, data: bytes) -> Path:
        if target == second:
            raise OSError(28, "No space left on device", str(target))
        return real(target, data)

    monkeypatch.setattr(fs, "_write_temp", failing)
    with pytest.raises(OSError, match="No space"):
        with fs.OutputGroup() as group:
            group.write(first, b"new\n")
            group.write(second, b"{}\n")
    assert first.read_text() == "old\n" and not second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jsonl"]


def test_a_group_renames_every_output_on_a_clean_exit_and_none_on_an_error(tmp_path) -> None:
    with fs.OutputGroup() as group:
        group.write(tmp_path / "a", b"1")
        group.write(tmp_path / "b", b"2")
        assert not (tmp_path / "a").exists()  # nothing renamed until the block ends
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "b").read_bytes() == b"2"
    with pytest.raises(ValueError, match="late"):
        with fs.OutputGroup() as group:
            group.write(tmp_path / "a", b"one")
            raise ValueError("a bad input found late")
    assert (tmp_path / "a").read_bytes() == b"1" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    with pytest.raises(ConfigError, match="written twice"), fs.OutputGroup() as group:
        group.write(tmp_path / "c", b"1")
        group.write(tmp_path / "c", b"2")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_group_outputs_get_the_mode_open_gives(tmp_path, mask) -> None:
    old = os.umask(mask)
    try:
        with fs.OutputGroup() as group:
            group.write(tmp_path / "a", b"1")
        assert fs.open_mode() == 0o666 & ~mask
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o666 & ~mask


def test_a_file_that_is_not_an_own_output_is_not_replaced(tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(ConfigError, match=r"--summary .*notes.txt: exists and is not a summary; refusing to "
                                          r"replace it — remove that file or pass another path"):
        fs.refuse_replacing_foreign("--summary", notes, lambda p: False, "a summary")
    fs.refuse_replacing_foreign("--summary", notes, lambda p: True, "a summary")  # an earlier output: replaced
    fs.refuse_replacing_foreign("--summary", tmp_path / "absent", lambda p: False, "a summary")  # free
    with pytest.raises(ConfigError, match=r"notes.txt: exists and is not a summary; refusing to replace it — "
                                          r"delete it first$"):
        fs.refuse_replacing_foreign("--summary", notes, lambda p: False, "a summary", "delete it first")


def test_an_empty_file_that_is_not_an_own_output_is_not_replaced_either(tmp_path) -> None:
    """Fail closed: an empty file is not the command's (no command writes an empty output) and may matter by
    being there (an ``__init__.py``, ``py.typed``); only an absent path is free."""
    empty = tmp_path / "__init__.py"
    empty.touch()
    with pytest.raises(ConfigError, match="__init__.py: exists and is not a summary; refusing to replace it"):
        fs.refuse_replacing_foreign("--summary", empty, lambda p: False, "a summary")
    fs.refuse_replacing_foreign("--summary", empty, lambda p: True, "a summary")  # is_own decides, as for any file
