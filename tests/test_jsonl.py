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


def test_scan_gives_each_lines_exact_bytes_value_or_error_and_marks_only_a_torn_last_line(tmp_path) -> None:
    """The primitive under every reader: split on b"\\n" alone, nothing judged beyond "is it JSON"."""
    from cleanroom.jsonl import scan_jsonl, scan_jsonl_bytes

    data = b'{"a": 1}\r\n\n{"a": \xff}\n[2]\n{"b": '
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    lines = list(scan_jsonl(path))
    assert [ln._replace(error=str(ln.error)) for ln in lines] == [
        ln._replace(error=str(ln.error)) for ln in scan_jsonl_bytes(data)
    ]
    assert [ln.number for ln in lines] == [1, 2, 3, 4, 5]
    assert [ln.raw for ln in lines] == [b'{"a": 1}\r', b"", b'{"a": \xff}', b"[2]", b'{"b": ']
    assert [ln.value for ln in lines] == [{"a": 1}, None, None, [2], None]
    assert [type(ln.error).__name__ for ln in lines] == [
        "NoneType", "JSONDecodeError", "UnicodeDecodeError", "NoneType", "JSONDecodeError"
    ]
    assert [ln.complete for ln in lines] == [True, True, True, True, False]
    assert list(scan_jsonl_bytes(b"")) == [] and list(scan_jsonl_bytes(b"{}\n"))[0].complete
