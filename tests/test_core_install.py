"""The exit-code contract on the core install (no torch stack) and on input that is not clean UTF-8 JSONL.

Each command runs in a subprocess where every ``train`` package fails to import as if not installed, so
the default CPU suite exercises the torch-free path; ``tox -e core`` runs this module where they are
not installed at all. Nothing here needs torch: the files are written by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cleanroom.errors import TRAIN_PACKAGES

# Not ``sys.modules[name] = None``: scipy probes ``sys.modules`` for torch and would trip over the None. A finder
# that says "not installed" is what a core install looks like to every importer.
_BLOCKED = (
    "import sys\n"
    f"BLOCKED = {sorted(TRAIN_PACKAGES)!r}\n"
    "class NotInstalled:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NotInstalled())\n"
    "from cleanroom.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def cleanroom(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCKED, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _verdict(key: int, ok: bool) -> dict:
    block = {"follow_all_instructions": ok, "follow_instruction_list": [ok]}
    return {"key": key, "strict": block, "loose": block, "conditions": {
        "prompt_sha256": f"{key:064d}", "scorer_sha256": "0" * 64, "generation": {"temperature": 0.0}}}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"key": k, "prompt": f"Write about {k}.",
                                           "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n"
                               for k in range(3)))
    responses = tmp_path / "responses.jsonl"
    responses.write_text("".join(json.dumps({"key": k, "response": "fine text"}) + "\n" for k in range(3)))
    sft = tmp_path / "sft.jsonl"  # a well-formed data file: scan-data reads it before it needs the tokenizer
    sft.write_text(json.dumps({"prompt": "Q: hi\n", "completion": "A: hello"}) + "\n")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(_verdict(k, k % 2 == 0)) + "\n" for k in range(4)))
    b.write_text("".join(json.dumps(_verdict(k, True)) + "\n" for k in range(4)))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return {"prompts": prompts, "responses": responses, "sft": sft, "a": a, "b": b, "model": model}


@pytest.mark.parametrize("command", [
    ["inspect-model", "{model}"],
    ["scan-data", "{sft}", "--tokenizer", "{model}"],
    ["run", "stage1", "--profile", "tiny"],
    ["eval", "run", "--model", "{model}", "--out", "evals"],
])
def test_a_train_command_on_the_core_install_is_the_install_hint(command, files, tmp_path) -> None:
    proc = cleanroom(*[c.format(**files) for c in command], cwd=tmp_path)
    _one_line_error(proc, 2, "DependencyError", "pip install 'cleanroom[train]'")


def test_core_commands_work_without_torch(files, tmp_path) -> None:
    proc = cleanroom("eval", "score", "--prompts", files["prompts"], "--responses", files["responses"],
                     "--out", tmp_path / "v.jsonl", "--summary", tmp_path / "s.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = cleanroom("eval", "compare", files["a"], files["b"], "--min-n", "4", "--override-reason", "unit test",
                     cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


_BAD_FILES = {  # defect -> (bytes after a valid first line, or None for the whole file; what the error names)
    "invalid UTF-8": (lambda good: good + b'{"key": "\xff"}\n', "line 2: not UTF-8 (byte 0xff"),
    "BOM": (lambda good: b"\xef\xbb\xbf" + good, "line 1: starts with a UTF-8 byte-order mark"),
    "blank line": (lambda good: good + b"\n" + good, "line 2: blank line"),
    "bad JSON": (lambda good: good + b'{"key": \n', "line 2: not valid JSON"),
    "empty": (lambda good: b"", "is empty"),
}


@pytest.mark.parametrize("defect", sorted(_BAD_FILES))
@pytest.mark.parametrize("role", ["eval score --prompts", "eval score --responses", "eval compare"])
def test_every_reader_names_the_defect_and_its_line(role, defect, files, tmp_path) -> None:
    make, where = _BAD_FILES[defect]
    source = {"eval score --prompts": "prompts", "eval score --responses": "responses", "eval compare": "a"}[role]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(make(files[source].read_bytes().splitlines(keepends=True)[0]))
    if role == "eval score --prompts":
        args = ["eval", "score", "--prompts", bad, "--responses", files["responses"], "--out", tmp_path / "v.jsonl"]
    elif role == "eval score --responses":
        args = ["eval", "score", "--prompts", files["prompts"], "--responses", bad, "--out", tmp_path / "v.jsonl"]
    else:
        args = ["eval", "compare", files["a"], bad, "--min-n", "4", "--override-reason", "unit test"]
    proc = cleanroom(*args, cwd=tmp_path)
    _one_line_error(proc, 2, str(bad), where)
    assert not (tmp_path / "v.jsonl").exists()  # nothing half-written


def test_a_malformed_profile_is_one_line_naming_its_line(tmp_path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("model:\n  path: [tiny\nseed: 1\n")
    proc = cleanroom("run", "stage1", "--profile", profile, cwd=tmp_path)
    _one_line_error(proc, 2, f"{profile}: not valid YAML at line 3 column 5")
    profile.write_bytes(b"seed: \xff\n")
    _one_line_error(cleanroom("run", "stage1", "--profile", profile, cwd=tmp_path), 2, "not UTF-8", "0xff")
    proc = cleanroom("run", "stage1", "--profile", profile, "--debug", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" in proc.stderr  # --debug shows it, and keeps the code


def test_verify_and_trace_on_a_record_file_with_a_bad_byte(tmp_path) -> None:
    """verify reports the edited line as a broken edge (exit 1); trace refuses the file as input (exit 2)."""
    from cleanroom.artifacts import RunDir
    from cleanroom.provenance import capture_provenance

    run = RunDir.create(tmp_path, "r1", {"seed": 0})
    with run.stage("gen", provenance=capture_provenance("gen", run_id="r1", config={"seed": 0})) as st:
        w = st.jsonl("out.jsonl")
        for i in range(3):
            w.write({"text": f"record {i}"}, record_id=f"gen:{i}")
    run.finalize()
    path = run.path / "gen" / "out.jsonl"
    path.write_bytes(path.read_bytes().replace(b"record 1", b"record \xff"))
    proc = cleanroom("verify", run.path, cwd=tmp_path)
    assert proc.returncode == 1 and "gen/out.jsonl line 2" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    _one_line_error(cleanroom("trace", run.path, "gen:0", cwd=tmp_path), 2, "gen/out.jsonl")
