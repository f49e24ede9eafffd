"""Provenance suite on a real tiny run: every record verifies and traces, 1,000 byte mutations are all caught and named, SIGKILLed writers (in the record loop, the manifest write and finalize) resume exactly, secrets never leak into artifacts, output or logs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.artifacts import RunDir, read_records
from cleanroom.cli import main
from cleanroom.generation import generate
from cleanroom.provenance import capture_provenance, content_sha256, digest_path
from cleanroom.verify import trace_record, verify_run

pytestmark = pytest.mark.slow

SECRET = "hf_PlantedProvenanceSecret0123456789XYZ"
URL_SECRET = "urlPassw0rdPlanted42"
QUERY_SECRET = "querySigPlanted77"
AUTH_SECRET = "Basic cGxhbnRlZEF1dGhIZWFkZXI="
N_MUTATIONS = 1000
N_CRASH_TRIALS = 20
PROMPTS = [
    "Write a haiku about rivers.",
    "List three prime numbers.",
    "Explain why the sky is blue in one sentence.",
    "Name a colour that starts with B.",
]


@pytest.fixture(scope="module")
def planted_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", SECRET)
        mp.setenv("WANDB_API_KEY", "wandbPlantedKey987654")
        yield


@pytest.fixture(scope="module")
def run_log(tmp_path_factory):
    """A file outside the run that receives what the module's runs log: Python logging at DEBUG (root, and
    transformers, which does not propagate) and warnings; ``tiny_run`` appends its stdout and stderr."""
    path = tmp_path_factory.mktemp("logs") / "run.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_base_model, planted_env, run_log, request) -> Iterator[Path]:
    """instructions → generations (clean loader on the tiny base) → sft_data → adapter (PEFT LoRA) → eval."""
    logging.getLogger("cleanroom.verification").info("making the tiny provenance run")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        root = tmp_path_factory.mktemp("runs")
        path = _make_tiny_run(root, tiny_base_model)
    with open(run_log, "a", encoding="utf-8") as fh:
        fh.write(out.getvalue())
    failed = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed:  # kept only when a test of the module failed
        shutil.rmtree(root, ignore_errors=True)


def _make_tiny_run(root: Path, tiny_base_model: Path) -> Path:
    from peft import LoraConfig, get_peft_model

    from cleanroom.loader import CleanModelLoader

    config = {
        "model": {"path": str(tiny_base_model), "mirror": f"https://alice:{URL_SECRET}@mirror.example/hub"},
        "data": {"url": f"https://data.example/set.jsonl?sv=1&sig={QUERY_SECRET}", "headers": {"Authorization": AUTH_SECRET}},
        "generation": {"max_new_tokens": 6, "temperature": 0.0},
        "seed": 0,
        "hf_token": SECRET,
    }
    run = RunDir.create(root, "tiny", config)

    with run.stage("instructions", provenance=capture_provenance("instructions", run_id="tiny", config=config)) as st:
        w = st.jsonl("instructions.jsonl")
        inst_ids = [w.write({"key": i, "prompt": p}, record_id=f"instr:{i}") for i, p in enumerate(PROMPTS)]

    loader = CleanModelLoader(tiny_base_model)
    model, tokenizer, loader_prov = loader.load()
    gen_params = dict(config["generation"])
    prov = capture_provenance(
        "generations", run_id="tiny", config=config, model_path=tiny_base_model, loader=loader_prov,
        generation=gen_params, seeds={"generate": 0},
    )  # fmt: skip
    res = generate(model, tokenizer, PROMPTS, max_new_tokens=6, seeds=0)
    with run.stage("generations", provenance=prov, inputs=["instructions/instructions.jsonl"]) as st:
        w = st.jsonl("generations.jsonl")
        gen_ids = [
            w.write(
                {"key": i, "response": text, "n_tokens": n},
                parents=[run.ref("instructions/instructions.jsonl", inst_ids[i])],
                record_id=f"gen:{i}",
            )
            for i, (text, n) in enumerate(zip(res.texts, res.token_counts, strict=True))
        ]

    prov = capture_provenance("sft_data", run_id="tiny", config=config)
    with run.stage("sft_data", provenance=prov, inputs=["generations/generations.jsonl"]) as st:
        w = st.jsonl("examples.jsonl")
        for i, text in enumerate(res.texts):
            w.write(
                {"prompt": PROMPTS[i], "completion": text},
                parents=[
                    run.ref("instructions/instructions.jsonl", inst_ids[i]),
                    run.ref("generations/generations.jsonl", gen_ids[i]),
                ],
            )

    prov = capture_provenance("adapter", run_id="tiny", config=config, model_path=tiny_base_model, seeds={"lora": 0})
    with run.stage("adapter", provenance=prov, inputs=["sft_data/examples.jsonl"]) as st:
        peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
        peft_model.save_pretrained(st.dir / "lora")
        st.add_file(st.dir / "lora")

    adapter_ref = run.ref("adapter/lora", None)
    prov = capture_provenance("eval", run_id="tiny", config=config, model_path=tiny_base_model)
    with run.stage("eval", provenance=prov, inputs=["adapter/lora"]) as st:
        w = st.jsonl("verdicts.jsonl")
        for i in range(len(PROMPTS)):
            w.write(
                {"key": i, "follow_all_instructions": len(res.texts[i]) > 0},
                parents=[run.ref("generations/generations.jsonl", gen_ids[i]), adapter_ref],
                record_id=f"eval/base:{i}",
            )
    run.finalize()
    return run.path


def _record_files(run: Path) -> list[Path]:
    return sorted(run.glob("*/*.jsonl"))


def test_every_record_has_a_valid_block_and_verify_passes(tiny_run: Path) -> None:
    report = verify_run(tiny_run)
    assert report.ok, report.first and report.first.message
    assert report.counts["stages"] == 5 and report.counts["parents"] == 4 + 8 + 8
    for path in _record_files(tiny_run):
        for rec in read_records(path):
            block = rec["provenance"]
            assert block["content_sha256"] == content_sha256(rec)
            assert block["producer"]["stage"] == path.parent.name and block["producer"]["run_id"] == "tiny"
    gen_manifest = json.loads((tiny_run / "generations" / "manifest.json").read_text())
    files = gen_manifest["provenance"]["model"]["files"]
    assert "model.safetensors" in files and gen_manifest["provenance"]["loader_version"]
    adapter_sha = read_records(tiny_run / "eval" / "verdicts.jsonl")[0]["provenance"]["parents"][1]["sha256"]
    assert adapter_sha == digest_path(tiny_run / "adapter" / "lora")


def test_trace_walks_a_verdict_back_to_instruction_adapter_and_base_model(tiny_run: Path) -> None:
    node = trace_record(tiny_run, "eval/base:2")
    gen, adapter = node.parents
    assert (gen.record_id, adapter.kind, adapter.artifact) == ("gen:2", "artifact", "adapter/lora")
    assert [p.record_id for p in gen.parents] == ["instr:2"] and gen.parents[0].parents == ()
    assert "model.safetensors" in gen.model["files"]


def _mutate_one(rng: random.Random, targets: dict[str, list[Path]], run: Path) -> tuple[Path, int, int]:
    category = rng.choice(sorted(targets))
    path = rng.choice(targets[category])
    data = path.read_bytes()
    offset = rng.randrange(len(data))
    new = rng.choice([b for b in range(256) if b != data[offset]])
    return path, offset, new


def test_random_single_byte_mutations_are_all_detected_and_named(tiny_run: Path) -> None:
    """1,000 mutations over records, manifests, attestation and the adapter: 100% caught, the edge named."""
    targets = {
        "records": _record_files(tiny_run),
        "manifests": sorted(tiny_run.glob("*/manifest.json")),
        "attestation": [tiny_run / "attestation.json"],
        "adapter": sorted(p for p in (tiny_run / "adapter" / "lora").rglob("*") if p.is_file()),
    }
    rng = random.Random(20240611)
    missed, unnamed, per_category = [], [], dict.fromkeys(targets, 0)
    for _ in range(N_MUTATIONS):
        path, offset, new = _mutate_one(rng, targets, tiny_run)
        rel = path.relative_to(tiny_run).as_posix()
        per_category[next(c for c, ps in targets.items() if path in ps)] += 1
        original = path.read_bytes()
        path.write_bytes(original[:offset] + bytes([new]) + original[offset + 1 :])
        try:
            report = verify_run(tiny_run)
        finally:
            path.write_bytes(original)
        if report.ok:
            missed.append((rel, offset, new))
            continue
        first = report.first
        named = first.file == rel or rel in first.message
        if path.suffix == ".jsonl":  # a record edit must be pinned to its line
            named = named and first.line == original[:offset].count(b"\n") + 1
        if not named:
            unnamed.append((rel, offset, new, first.message))
    assert verify_run(tiny_run).ok
    assert min(per_category.values()) >= 150, per_category
    assert missed == [], f"{len(missed)} undetected mutations, e.g. {missed[:3]}"
    assert unnamed == [], f"{len(unnamed)} detected but misattributed, e.g. {unnamed[:3]}"


WRITER = r"""
import os
import sys
import time
from pathlib import Path
from cleanroom.artifacts import RunDir
from cleanroom.provenance import capture_provenance

def pause_before_replacing(name):
    # say so and wait to be killed when `name`'s temp file is written and fsynced, before its rename
    real = os.replace
    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            print("replacing " + name, flush=True)
            time.sleep(60)
        return real(src, dst, *args, **kwargs)
    os.replace = replace

def write_all(run_path, n):
    run = RunDir.open(run_path)
    with run.stage("crash", provenance=capture_provenance("crash", run_id=run.run_id)) as st:
        w = st.jsonl("records.jsonl")
        print("ready", flush=True)
        for i in range(n):
            w.write({"i": i, "text": "lorem ipsum dolor " * (1 + i % 7)}, record_id=f"crash:{i}")
            print(i, flush=True)
        print("finishing", flush=True)
    print("finalizing", flush=True)
    run.finalize()
    print("done", flush=True)

if __name__ == "__main__":
    if len(sys.argv) > 3:
        pause_before_replacing(sys.argv[3])
    write_all(Path(sys.argv[1]), int(sys.argv[2]))
"""


def _writer(tmp_path: Path) -> tuple[Path, dict]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    namespace: dict = {}
    exec(compile(WRITER, str(script), "exec"), namespace)  # the same writer, resumed in-process
    return script, namespace


def _resume_and_check(namespace: dict, run: RunDir, n: int, label: str) -> None:
    namespace["write_all"](run.path, n)
    ids = [r["provenance"]["record_id"] for r in read_records(run.path / "crash" / "records.jsonl")]
    assert ids == [f"crash:{i}" for i in range(n)], label
    report = verify_run(run.path)
    assert report.ok, f"{label}: {report.first.message}"


def test_sigkilled_writer_resumes_without_loss_or_duplication(tmp_path: Path) -> None:
    n, rng = 100, random.Random(7)
    script, namespace = _writer(tmp_path)
    killed_mid_file = 0
    for trial in range(N_CRASH_TRIALS):
        run = RunDir.create(tmp_path / "runs", f"t{trial}", {"trial": trial})
        proc = subprocess.Popen([sys.executable, str(script), str(run.path), str(n)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        target = rng.randrange(0, n - 1)  # kill somewhere after record `target`, wherever the writer then is
        while True:
            line = proc.stdout.readline()
            if not line or int(line) >= target:  # an empty line: the writer already ended
                break
        time.sleep(rng.uniform(0.0, 0.004))  # ~ one fsync: lands before, inside or after the next write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        path = run.path / "crash" / "records.jsonl"
        written = path.read_bytes().count(b"\n") if path.exists() else 0
        killed_mid_file += 0 < written < n
        _resume_and_check(namespace, run, n, f"trial {trial}: killed after {written} records")
    assert killed_mid_file >= N_CRASH_TRIALS // 2, f"only {killed_mid_file} kills landed mid-file"


def _kill_after(proc: subprocess.Popen, marker: bytes, delay: float = 0.0) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == marker:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("name", ["stage.json", "manifest.json", "attestation.json"])
def test_writer_killed_inside_an_atomic_write_resumes_and_verifies(tmp_path: Path, name: str) -> None:
    """Killed with the temp file of stage.json (stage start), manifest.json (stage finish) or attestation.json
    (finalize) written and fsynced but not renamed: the run is visibly unfinished, then resumes exactly."""
    n = 30
    script, namespace = _writer(tmp_path)
    run = RunDir.create(tmp_path / "runs", "t", {"kill": name})
    proc = subprocess.Popen([sys.executable, str(script), str(run.path), str(n), name], stdout=subprocess.PIPE)
    try:
        _kill_after(proc, f"replacing {name}".encode())
    finally:
        proc.kill()
    target = run.path / name if name == "attestation.json" else run.path / "crash" / name
    assert not target.exists() and list(target.parent.glob(f".{name}.*.tmp")), "the kill missed the write"
    assert not verify_run(run.path).ok  # an unfinished run never verifies
    _resume_and_check(namespace, run, n, f"killed before renaming {name}")


def test_writer_killed_at_random_points_while_finishing_resumes_and_verifies(tmp_path: Path) -> None:
    """Kills land after the last record: while the manifest is hashed and written, between the stage's
    exit and finalize, inside finalize, or after the writer ended."""
    n, rng = 30, random.Random(11)
    script, namespace = _writer(tmp_path)
    for trial in range(8):
        run = RunDir.create(tmp_path / "runs", f"t{trial}", {"trial": trial})
        proc = subprocess.Popen([sys.executable, str(script), str(run.path), str(n)], stdout=subprocess.PIPE)
        try:
            _kill_after(proc, b"finishing", rng.uniform(0.0, 0.03))
        finally:
            proc.kill()
        _resume_and_check(namespace, run, n, f"trial {trial}")


def test_planted_secrets_never_reach_artifacts_or_logs(tiny_run: Path, run_log: Path, capsys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["verify", str(tiny_run), "--json"]) == 0
    assert main(["trace", str(tiny_run), "eval/base:0"]) == 0
    assert main(["trace", str(tiny_run)]) == 0
    assert main(["env", "--json"]) == 0
    logs = capsys.readouterr()
    leaks = [SECRET, URL_SECRET, QUERY_SECRET, AUTH_SECRET, "wandbPlantedKey987654"]
    run_logged = run_log.read_text(encoding="utf-8")
    assert "making the tiny provenance run" in run_logged  # the capture is wired
    for secret in leaks:
        assert secret not in run_logged, f"{secret[:6]}... leaked into the run's log"
        assert secret not in caplog.text, f"{secret[:6]}... leaked into a log record of the commands"
    for path in sorted(p for p in tiny_run.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for secret in leaks:
            assert secret.encode() not in data, f"{secret[:6]}... leaked into {path}"
    for secret in leaks:
        assert secret not in logs.out and secret not in logs.err
    config = (tiny_run / "config.resolved.yaml").read_text()
    assert "https://***@mirror.example/hub" in config and "hf_token: '***'" in config
    assert "set.jsonl?sv=1&sig=***" in config and "Authorization: '***'" in config
    assert os.environ.get("HF_TOKEN") == SECRET  # the secret was really planted while the run was made
