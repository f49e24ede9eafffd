"""cleanroom.jsonl: the one JSONL reader refuses each defect with the file and line, and reads good files exactly."""

from __future__ import annotations

import pytest

from cleanroom.artifacts import read_records
from cleanroom.errors import InputError, MissingFileError
from cleanroom.jsonl import read_jsonl

CASES = {
    "not UTF-8": (b'{"a": 1}\n{"a": "\xff"}\n', r"line 2: not UTF-8 \(byte 0xff at offset 7\)"),
    "BOM": (b'\xef\xbb\xbf{"a": 1}\n', "line 1: starts with a UTF-8 byte-order mark"),
    "blank line": (b'{"a": 1}\n  \n{"a": 2}\n', "line 2: blank line"),
    "bad JSON": (b'{"a": 1}\n{"a": }\n', "line 2: not valid JSON"),
    "not an object": (b'{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object, got list"),
    "empty": (b"", "is empty"),
    "only a newline": (b"\n", "line 1: blank line"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_defect_is_an_input_error_naming_file_and_line(tmp_path, case) -> None:
    data, message = CASES[case]
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message) as err:
        read_jsonl(path, what="test file")
    assert str(path) in str(err.value)


def test_good_files_read_exactly_and_a_run_record_file_may_be_empty(tmp_path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes('{"a": 1}\n{"b": "caf\u00e9"}'.encode())  # last line without its newline
    assert read_jsonl(path) == [{"a": 1}, {"b": "caf\u00e9"}]
    path.write_bytes(b"")
    assert read_records(path) == []  # a stage's record file can hold zero records (its manifest says so)
    with pytest.raises(MissingFileError):
        read_jsonl(tmp_path / "missing.jsonl")
