"""Preflight's pure parts: checkpoint disk need, budget, revision pin, architecture and rates, from configs alone."""

from __future__ import annotations

import json

import pytest

from cleanroom.config import load_config
from cleanroom.errors import ConfigError
from cleanroom.memory import QWEN25_ARCHS, count_params
from cleanroom.pipeline.preflight import (
    checkpoint_disk,
    memory_estimates,
    model_arch,
    project_stage1,
    projection_line,
    revision_problem,
    sft_worst_length,
)


def test_checkpoint_disk_of_the_production_profile():
    """qwen2.5-32b: nf4, r=64 on all projections (N = 536,870,912), paged_adamw_8bit, save_total_limit 2.

    One checkpoint: N * (2 B bf16 adapter + 2 B 8-bit moments) + 32 MiB = 2,181,038,080 B; one adapter
    N * 2 = 1,073,741,824 B, two copies. SFT: ceil(2000 / (4 * 4)) * 2 = 250 steps, ceil(250 / 100) = 3
    saves, at most 2 + 1 = 3 on disk: 3 * 2,181,038,080 + 2 * 1,073,741,824 = 8,690,597,888 B. DPO:
    ceil(1000 / (2 * 8)) = 63 steps, 1 save: 2,181,038,080 + 2,147,483,648 = 4,328,521,728 B.
    Total 13,019,119,616 B = 13.0 GB, far above the 1 GB floor the check used to apply.
    """
    need = checkpoint_disk(load_config("qwen2.5-32b"), "Qwen2.5-32B")
    assert need["sft"]["checkpoints"] == 3 and need["sft"]["checkpoint_bytes"] == 2_181_038_080
    assert need["sft"]["bytes"] == 8_690_597_888
    assert need["dpo"]["checkpoints"] == 1 and need["dpo"]["bytes"] == 4_328_521_728
    assert need["total_bytes"] == 13_019_119_616
    unlimited = checkpoint_disk(load_config("qwen2.5-32b", ["sft.train.save_total_limit=null"]), "Qwen2.5-32B")
    assert unlimited["sft"]["checkpoints"] == 3  # every save kept: still 3, the run only makes 3
    one = checkpoint_disk(load_config("qwen2.5-32b", ["sft.train.save_total_limit=1"]), "Qwen2.5-32B")
    assert one["sft"]["checkpoints"] == 2


def test_model_arch_reads_config_json_never_assumes(tmp_path):
    # a local directory not named like a Qwen2.5 size is sized from its config.json
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text(json.dumps({**QWEN25_ARCHS["Qwen2.5-7B"], "model_type": "qwen2"}))
    spec = load_config("qwen2.5-32b", [f"model.path={tmp_path / 'my-model'}"])
    assert count_params(model_arch(spec.model)) == count_params("Qwen2.5-7B")
    assert model_arch(load_config("tiny").model)["hidden_size"] == 64  # the fixture's own config.json
    # a Hub id not in the cache: its name if it is a known size, else a clear error (no silent 32B)
    assert model_arch(spec.model.__class__(path="Qwen/Qwen2.5-32B"))["num_hidden_layers"] == 64
    unknown = load_config("qwen2.5-32b", ["model.path=someone/not-cached-model-9b"])
    with pytest.raises(ConfigError, match="cannot size model.path 'someone/not-cached-model-9b'"):
        model_arch(unknown.model)
    with pytest.raises(ConfigError, match="cannot size"):
        project_stage1(unknown, device="cuda")


def test_projection_uses_the_gate_report_and_checks_max_hours(tmp_path):
    """Rates from check 9 of a gate report (7.616B model: 4000 train, 1000 generation tokens/s) scaled to
    the 32.7639B production model: 4000 * 7.616 / 32.7639 = 929.8 and 1000 * 7.616 / 32.7639 = 232.4."""
    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H100"}, "checks": [
        {"check": "9_cost", "figures": {"measured_train_tokens_per_s": 4000.0, "measured_gen_tokens_per_s": 1000.0,
                                        "scaling": "x 7.616B / 32.764B (inversely proportional)"}}]}))
    nominal = project_stage1(load_config("qwen2.5-32b"), device="cuda")
    assert nominal["rates"].startswith("nominal")
    spec = load_config("qwen2.5-32b", [f"budget.gate_report={report}", "budget.max_hours=1"])
    proj = project_stage1(spec, device="cuda")
    assert proj["train_tokens_per_s"] == pytest.approx(929.8, abs=0.1)
    assert proj["gen_tokens_per_s"] == pytest.approx(232.4, abs=0.1)
    assert "measured by the GPU gate on NVIDIA H100" in proj["rates"] and "from 7.62B to 32.76B" in proj["rates"]
    assert proj["hours"] > 1 and proj["within_budget"] is False  # max_hours is checked, not only max_cost_usd
    line = projection_line(proj)
    assert "1.0 h: EXCEEDED" in line and "measured by the GPU gate" in line
    assert project_stage1(load_config("qwen2.5-32b", ["budget.max_hours=1000"]), device="cuda")["within_budget"]


@pytest.mark.parametrize(("levers", "overrides", "note"), [
    ({"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
      "pad_to_multiple_of": False, "batch_rebalance": False},
     [], None),
    ({"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
      "pad_to_multiple_of": False, "batch_rebalance": False},
     ["sft.train.kbit_fp32_upcast=true"],
     "this run's SFT sets kbit_fp32_upcast=True (gate: False): its training rate was not measured"),
    ({"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
      "pad_to_multiple_of": False, "batch_rebalance": False},
     ["sft.train.micro_batch_budget_gib=40"], "micro_batch=True (gate: False)"),
    # a gate from before a lever existed ran without it: off there, so a run with it off matches, one with it on not
    ({"kbit_fp32_upcast": False, "padding_free": False}, [], None),
    ({"kbit_fp32_upcast": False, "padding_free": False}, ["sft.train.batch_rebalance=true"],
     "batch_rebalance=True (gate: not recorded, so off)"),
    ({"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
      "pad_to_multiple_of": 256, "batch_rebalance": False}, ["sft.train.pad_to_multiple_of=64"],
     "pad_to_multiple_of=64 (gate: 256)"),
    ({"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
      "pad_to_multiple_of": False, "batch_rebalance": False}, ["sft.train.batch_rebalance=true"],
     "this run's SFT sets batch_rebalance=True (gate: False)"),
    (None, [], "the report does not say which training levers"),
])
def test_the_projection_says_when_the_gate_measured_another_training_path(tmp_path, levers, overrides, note):
    """Check 9 records the TrainSpec levers its training rate ran with; a run on other levers is told so."""
    figures = {"measured_train_tokens_per_s": 4000.0, "measured_gen_tokens_per_s": 1000.0,
               "scaling": "x 7.616B / 32.764B (inversely proportional)"}
    if levers is not None:
        figures["train_levers"] = levers
    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"},
                                  "checks": [{"check": "9_cost", "figures": figures}]}))
    proj = project_stage1(load_config("qwen2.5-32b", [f"budget.gate_report={report}", *overrides]), device="cuda")
    assert proj["rates"].endswith("to 32.76B") if note is None else note in proj["rates"]


@pytest.mark.parametrize(("check10", "backend", "speedup", "note"), [
    ({"status": "passed", "figures": {"unsloth_steady_tokens_per_s": 7520.0, "peft_steady_tokens_per_s": 4700.0}},
     "unsloth", 1.6, "SFT on unsloth at 1.60x peft's rate (gate check 10"),
    ({"status": "passed", "figures": {"unsloth_steady_tokens_per_s": 7520.0, "peft_steady_tokens_per_s": 4700.0}},
     "peft", 1.0, None),
    ({"status": "skipped", "figures": {}}, "unsloth", 1.0, "whose rate the gate did not measure (check 10)"),
    ({"status": "failed", "figures": {"unsloth_steady_tokens_per_s": 9000.0, "peft_steady_tokens_per_s": 4500.0}},
     "unsloth", 1.0, "whose rate the gate did not measure (check 10)"),
    (None, "unsloth", 1.0, "whose rate the gate did not measure (check 10)"),
])
def test_the_projection_prices_sft_at_the_backend_that_will_run(tmp_path, check10, backend, speedup, note):
    """Check 9's training rate is peft's; a run whose SFT trains on Unsloth is priced at check 10's measured
    Unsloth/peft ratio, or says that rate was not measured, never silently peft's. (DPO stays on peft here: auto
    resolves it from check 10's DPO figures, which these reports lack.)"""
    levers = {"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False,
              "micro_batch": False, "pad_to_multiple_of": False, "batch_rebalance": False}
    checks = [{"check": "9_cost", "figures": {"measured_train_tokens_per_s": 4000.0, "measured_gen_tokens_per_s": 1000.0,
                                              "scaling": "x 7.616B / 32.764B", "train_levers": levers}}]
    if check10 is not None:
        checks.append({"check": "10_unsloth", **check10})
    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"}, "checks": checks}))
    spec = load_config("qwen2.5-32b", [f"budget.gate_report={report}"])
    proj = project_stage1(spec, device="cuda", backend=backend)
    base = project_stage1(spec, device="cuda", backend="peft")
    assert proj["sft_backend"] == backend
    assert proj["sft_tokens_per_s"] == pytest.approx(proj["train_tokens_per_s"] * speedup, rel=1e-3)
    assert proj["phase_hours"]["sft"] == pytest.approx(base["phase_hours"]["sft"] / speedup, rel=1e-3)
    assert proj["dpo_backend"] == "peft" and proj["phase_hours"]["dpo"] == base["phase_hours"]["dpo"]
    assert (note is None and "unsloth" not in proj["rates"]) or (note is not None and note in proj["rates"])


_LEVERS = {"kbit_fp32_upcast": False, "padding_free": False, "precompute_ref_log_probs": False, "micro_batch": False,
           "pad_to_multiple_of": False, "batch_rebalance": False}
_CHECK9 = {"check": "9_cost", "figures": {"measured_train_tokens_per_s": 4000.0, "measured_gen_tokens_per_s": 1000.0,
                                          "scaling": "x 7.616B / 32.764B", "train_levers": _LEVERS}}
_SFT10 = {"unsloth_faster": True, "unsloth_steady_tokens_per_s": 7520.0, "peft_steady_tokens_per_s": 4700.0}
_DPO10 = {"unsloth_dpo_faster": True, "unsloth_dpo_steady_tokens_per_s": 3240.0, "peft_dpo_steady_tokens_per_s": 2000.0}


@pytest.mark.parametrize(("figures", "dpo_backend", "speedup", "note"), [
    ({**_SFT10, **_DPO10}, "unsloth", 1.62, "DPO on unsloth at 1.62x peft's rate (gate check 10"),
    ({**_SFT10, **_DPO10}, "peft", 1.0, None),
    (_SFT10, "unsloth", 1.0, "DPO runs on unsloth, whose rate the gate did not measure (check 10): projected at peft's"),
])
def test_the_projection_prices_dpo_at_the_backend_that_will_run(tmp_path, figures, dpo_backend, speedup, note):
    """DPO's peft rate is the training rate x DPO_THROUGHPUT_FACTOR (0.75); on Unsloth it is that times check 10's DPO
    ratio, 3240 / 2000 = 1.62, so the DPO phase takes 1 / 1.62 of peft's hours; SFT keeps its own backend's rate."""
    from cleanroom.cost import DPO_THROUGHPUT_FACTOR

    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"}, "checks": [
        _CHECK9, {"check": "10_unsloth", "status": "passed", "figures": figures}]}))
    spec = load_config("qwen2.5-32b", [f"budget.gate_report={report}"])
    proj = project_stage1(spec, device="cuda", backend="peft", dpo_backend=dpo_backend)
    base = project_stage1(spec, device="cuda", backend="peft", dpo_backend="peft")
    assert (proj["sft_backend"], proj["dpo_backend"]) == ("peft", dpo_backend)
    assert proj["dpo_tokens_per_s"] == pytest.approx(proj["train_tokens_per_s"] * DPO_THROUGHPUT_FACTOR * speedup,
                                                     rel=1e-3)
    assert proj["phase_hours"]["dpo"] == pytest.approx(base["phase_hours"]["dpo"] / speedup, rel=1e-3)
    assert proj["phase_hours"]["sft"] == base["phase_hours"]["sft"] and proj["sft_tokens_per_s"] == base["sft_tokens_per_s"]
    assert (note is None and "unsloth" not in proj["rates"]) or (note is not None and note in proj["rates"])
    # both stages on unsloth: each at its own ratio (SFT 7520 / 4700 = 1.6), both said
    both = project_stage1(spec, device="cuda", backend="unsloth", dpo_backend=dpo_backend)
    assert both["phase_hours"]["sft"] == pytest.approx(base["phase_hours"]["sft"] / 1.6, rel=1e-3)
    assert both["phase_hours"]["dpo"] == proj["phase_hours"]["dpo"] and "SFT on unsloth at 1.60x" in both["rates"]


def test_the_projection_resolves_the_dpo_backend_from_the_spec_when_not_given(tmp_path):
    """Without ``dpo_backend`` the projection resolves ``spec.backend`` for DPO: an explicit unsloth is unsloth for
    both stages; auto on CPU is peft for both (the nominal rates, so no gate note)."""
    report = tmp_path / "gate-report.json"
    report.write_text(json.dumps({"verdict": "GO", "context": {"device": "NVIDIA H200"}, "checks": [
        _CHECK9, {"check": "10_unsloth", "status": "passed", "figures": {**_SFT10, **_DPO10}}]}))
    spec = load_config("qwen2.5-32b", [f"budget.gate_report={report}", "backend=unsloth"])
    proj = project_stage1(spec, device="cuda")
    assert (proj["sft_backend"], proj["dpo_backend"]) == ("unsloth", "unsloth")
    assert "SFT on unsloth at 1.60x" in proj["rates"] and "DPO on unsloth at 1.62x" in proj["rates"]
    cpu = project_stage1(load_config("qwen2.5-32b"), device="cpu")
    assert (cpu["sft_backend"], cpu["dpo_backend"]) == ("peft", "peft")


def test_preflight_records_the_backend_of_each_training_stage(tmp_path, tiny_base_model):
    """Preflight resolves ``backend`` for SFT and for DPO and records both: in results.json (checks ``backend`` and
    ``dpo_backend``), in the projection, in the stage's provenance and in the run log."""
    from cleanroom.pipeline import stage1 as pipeline

    from .test_stage1 import SMALL

    run = pipeline.run_stage1(load_config("tiny", [*SMALL, "backend=auto"]), tmp_path, progress=False,
                              stop_after="preflight")
    checks = {c["check"]: c for c in json.loads((run / "preflight" / "results.json").read_text())["checks"]}
    on_cpu = {"backend": "peft", "requested": "auto", "reason": "auto: device is cpu, unsloth needs CUDA"}
    assert checks["backend"]["value"] == on_cpu and checks["dpo_backend"]["value"] == on_cpu
    assert checks["backend"]["passed"] and checks["dpo_backend"]["passed"]
    projection = checks["projected_cost"]["value"]
    assert (projection["sft_backend"], projection["dpo_backend"]) == ("peft", "peft")
    extra = json.loads((run / "preflight" / "manifest.json").read_text())["provenance"]["extra"]
    assert extra["backend"] == on_cpu and extra["dpo_backend"] == on_cpu
    log = (run / "run.log").read_text()
    assert "preflight: backend peft for SFT (auto: device is cpu" in log
    assert "preflight: backend peft for DPO (auto: device is cpu" in log


def test_a_hub_id_needs_a_pinned_commit_at_preflight_not_at_estimate(tmp_path):
    from cleanroom.pipeline.estimate import estimate

    spec = load_config("qwen2.5-32b")  # Qwen/Qwen2.5-32B, revision null
    problem = revision_problem(spec.model)
    assert problem is not None and "model.revision=<commit>" in problem
    assert "model.revision=<commit>" in (revision_problem(load_config("qwen2.5-32b", ["model.revision=main"]).model)
                                        or "")
    sha = "a" * 40
    assert revision_problem(load_config("qwen2.5-32b", [f"model.revision={sha}"]).model) is None
    assert revision_problem(load_config("qwen2.5-32b", [f"model.path={tmp_path}"]).model) is None  # local directory
    assert revision_problem(load_config("qwen2.5-32b", ["model.random_init=qwen2.5-0.5b"]).model) is None
    # a local path that is not there is named as one, not as a Hub id to pin
    for missing in (str(tmp_path / "nope"), "./models/x", "~/x", "a/b/c"):
        problem = revision_problem(load_config("qwen2.5-32b", [f"model.path={missing}"]).model) or ""
        assert "is no local directory" in problem and "Hub id and" not in problem, missing
    assert "is a Hugging Face Hub id" in (revision_problem(load_config("qwen2.5-32b").model) or "")
    assert revision_problem(load_config("tiny").model) is None
    assert estimate(spec)["cost"]["hours"] > 0  # --estimate needs no pin


def _words(text):  # a stand-in tokenizer: one token per whitespace-separated word
    return {"input_ids": text.split()}


def test_token_length_check_uses_the_teachers_real_completions(tmp_path):
    import numpy as np

    from cleanroom.ifeval import read_prompts
    from cleanroom.ifeval.evalset import make_eval_set
    from cleanroom.ifeval.prompting import zero_shot_prompt
    from cleanroom.ifeval.teacher import teacher_response

    make_eval_set(tmp_path, seed=0, n_eval=20, n_pool=40)
    pool = read_prompts(tmp_path / "sft_pool.jsonl")
    tiny = load_config("tiny", ["data.n_sft=30", "data.min_sft_survivors=10"])  # teacher: programmatic
    rng = np.random.default_rng(tiny.seed)  # the SFT-data stage's draw, in pool order
    exact = max(len((zero_shot_prompt(r.prompt) + teacher_response(r, rng)).split()) + 1 for r in pool[:30])
    worst, basis = sft_worst_length(tiny, pool, _words)
    assert (worst, basis) == (exact, "the programmatic teacher's completions (exact)")
    # sft_generation.max_new_tokens does not bound the teacher: raising it changes nothing
    assert sft_worst_length(load_config("tiny", ["data.n_sft=30", "data.min_sft_survivors=10",
                                                 "sft_generation.max_new_tokens=4000"]), pool, _words)[0] == exact
    # a model writes the answers: the longest prompt + max_new_tokens + EOS
    model = load_config("tiny", ["data.teacher=none", "sft_generation.max_new_tokens=100"])
    longest = max(len(zero_shot_prompt(r.prompt).split()) for r in pool)
    assert sft_worst_length(model, pool, _words)[0] == longest + 100 + 1


def test_memory_check_covers_dpo_which_peaks_higher_on_the_production_profile():
    """qwen2.5-32b: SFT at batch 4 vs DPO at batch 2 x (chosen + rejected) plus the reference forward:
    the DPO step is the peak (~40.3 GB vs ~36.7 GB), so checking SFT alone under-states the need."""
    from cleanroom.memory import estimate_dpo_peak_memory

    spec = load_config("qwen2.5-32b")
    est = memory_estimates(spec, "Qwen2.5-32B")
    t = spec.dpo.train
    assert est["dpo"].total_bytes == estimate_dpo_peak_memory(
        "Qwen2.5-32B", quantization="nf4", lora_r=64, lora_targets=spec.dpo.lora.targets, batch_size=t.batch_size,
        seq_len=t.max_length, gradient_checkpointing=True).total_bytes
    assert est["dpo"].total_bytes > est["sft"].total_bytes


def test_a_check_that_returns_none_fails_closed_naming_the_check():
    """A failing check (CleanroomError) and a check with no result (None: a bug) are both failures, told apart."""
    from cleanroom.pipeline.preflight import _attempt

    checks: list[dict] = []
    assert _attempt(checks, "projected_cost", lambda: {"hours": 1.0}) == {"hours": 1.0}
    assert checks == []

    def fails():
        raise ConfigError("over budget")

    assert _attempt(checks, "projected_cost", fails) is None
    assert checks[-1] == {"check": "projected_cost", "passed": False, "error": "ConfigError: over budget"}
    assert _attempt(checks, "base_model", lambda: None) is None
    assert checks[-1]["check"] == "base_model" and checks[-1]["passed"] is False
    assert "'base_model' returned None" in checks[-1]["error"] and "bug" in checks[-1]["error"]


def test_the_memory_estimate_sizes_the_micro_batch_that_will_run():
    """With sft.train.micro_batch_budget_gib the trainer splits the per-device batch (training.micro_batch); the
    preflight estimate sizes that micro-batch, not the profile's batch_size, and says nothing new otherwise."""
    from cleanroom.memory import arch_for, estimate_peak_memory
    from cleanroom.pipeline.estimates import memory_estimates
    from cleanroom.training.micro_batch import choose_micro_batch

    arch = arch_for("Qwen2.5-32B")
    plain = load_config("qwen2.5-32b")
    t = plain.sft.train
    per_device = t.batch_size * t.gradient_accumulation_steps
    full = estimate_peak_memory(arch, quantization=plain.model.quantization, lora_r=plain.sft.lora.r,
                                lora_targets=plain.sft.lora.targets, batch_size=per_device, seq_len=t.max_length,
                                gradient_checkpointing=t.gradient_checkpointing)
    one = estimate_peak_memory(arch, quantization=plain.model.quantization, lora_r=plain.sft.lora.r,
                               lora_targets=plain.sft.lora.targets, batch_size=1, seq_len=t.max_length,
                               gradient_checkpointing=t.gradient_checkpointing)
    budget = (one.total_bytes + full.total_bytes) / 2 / 2**30  # one row fits (with the margin), the whole batch not
    spec = load_config("qwen2.5-32b", [f"sft.train.micro_batch_budget_gib={budget:.3f}"])
    chosen, record = choose_micro_batch(spec.sft.train, arch, spec.model.quantization, spec.sft.lora, dpo=False)
    assert record["on"] and 1 <= chosen.batch_size < per_device
    est = memory_estimates(spec, arch)["sft"]
    assert est.total_bytes <= budget * 2**30 < full.total_bytes
    assert est.total_bytes == estimate_peak_memory(
        arch, quantization=spec.model.quantization, lora_r=spec.sft.lora.r, lora_targets=spec.sft.lora.targets,
        batch_size=chosen.batch_size, seq_len=t.max_length, gradient_checkpointing=t.gradient_checkpointing).total_bytes
    assert memory_estimates(plain, arch)["sft"].total_bytes == estimate_peak_memory(
        arch, quantization=plain.model.quantization, lora_r=plain.sft.lora.r, lora_targets=plain.sft.lora.targets,
        batch_size=t.batch_size, seq_len=t.max_length, gradient_checkpointing=t.gradient_checkpointing).total_bytes


def test_stage1_refuses_an_unknown_stop_after_and_a_damaged_budget_clock(tmp_path):
    """--stop-after must name a stage (an unknown one ran the whole pipeline); a clock.json that does not hold the
    seconds earlier attempts spent is an error, never a fresh budget for the resumed run."""
    from cleanroom.errors import ProvenanceError
    from cleanroom.pipeline import stage1

    with pytest.raises(ConfigError, match="'nosuch' is not a Stage 1 stage; allowed: preflight"):
        stage1.run_stage1(load_config("tiny"), tmp_path / "runs", stop_after="nosuch")
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made
    clock = tmp_path / "clock.json"
    assert stage1._spent_before(clock) == 0.0  # a first attempt
    clock.write_text('{"seconds": 12.5}')
    assert stage1._spent_before(clock) == 12.5
    for bad in ("{", '{"s": 1}', '{"seconds": "x"}', '{"seconds": -1}', '{"seconds": true}', "[]"):
        clock.write_text(bad)
        with pytest.raises(ProvenanceError, match="budget clock of earlier attempts is damaged"):
            stage1._spent_before(clock)
