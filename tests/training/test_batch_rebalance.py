"""TrainSpec.batch_rebalance: length-grouped micro-batches of variable size, seeded by the run, the step's loss unchanged."""

from __future__ import annotations

import math
import warnings

import pytest

from cleanroom.errors import ConfigError
from cleanroom.training import TrainSpec, rebalance, train_dpo, train_sft
from cleanroom.training import sft as sft_mod

pytestmark = pytest.mark.slow

#: eight pairs of five row lengths, so a step of 8 splits into micro-batches of different sizes
PAIRS = [{"prompt": "Say yes:", "chosen": " yes", "rejected": " no, never"},
         {"prompt": "Q: the colour of the sky?\nA:", "chosen": " blue, mostly, in the day", "rejected": " green"},
         {"prompt": "Name a fruit, a tree and a river, then say which one you like best and why:",
          "chosen": " apple, oak and the Nile; the apple, because it is sweet", "rejected": " no"},
         {"prompt": "Count:", "chosen": " one two three", "rejected": " four"}] * 2
SPLITS = {"one micro-batch": dict(batch_size=8, gradient_accumulation_steps=1),
          "four micro-batches": dict(batch_size=2, gradient_accumulation_steps=4)}


def _record_batches(monkeypatch):
    """Every batch the guarded collator hands a trainer, as (rows, width), per run label."""
    from cleanroom.training import collate

    seen: dict[str, list[tuple[int, int]]] = {}
    label: list[str] = []
    guarded = collate._GuardedCollator.__call__

    def record(self, examples):
        batch = guarded(self, examples)
        seen.setdefault(label[-1], []).append(tuple(batch["input_ids"].shape))
        return batch

    monkeypatch.setattr(collate._GuardedCollator, "__call__", record)
    return seen, label


def test_sft_same_rows_split_four_ways_give_the_one_batch_losses_with_less_padding(varied, load_tiny, lora, spec,
                                                                                   tmp_path, monkeypatch):
    """16 rows of four lengths, 8 a step: batch 8 x 1 and batch 2 x 4 draw the same rows each step (the sampler's
    permutation depends on the seed and the epoch only), so with SFT's token-weighted loss over the whole step the
    3-step curves agree within 1e-4 (fp32: only the summation order differs). That equality would hold for a plain
    2 x 4 split too; what the lever adds is checked after it: the 4-way split hands the model micro-batches of
    varying size, each step's sizes summing to 8, and pads fewer tokens than the one batch."""
    seen, label = _record_batches(monkeypatch)
    runs = {}
    for name, split in SPLITS.items():
        model, tok = load_tiny()
        label.append(name)
        runs[name] = train_sft(model, tok, varied * 4, lora=lora, output_dir=tmp_path / name.replace(" ", "-"),
                               train=spec(max_steps=3, save_steps=100, batch_rebalance=True, **split))
    one, four = runs["one micro-batch"], runs["four micro-batches"]
    assert four.losses == pytest.approx(one.losses, abs=1e-4)
    assert one.losses[-1] < one.losses[0] - 1e-2  # it trained: the agreement is not two flat curves
    assert four.levers["batch_rebalance"]["groups_per_step"] == 4 and four.levers["batch_rebalance"]["on"]
    steps = {name: [seen[name][i * g:(i + 1) * g] for i in range(3)]
             for name, g in (("one micro-batch", 1), ("four micro-batches", 4))}
    assert all(sum(rows for rows, _ in step) == 8 for name in steps for step in steps[name])
    assert len({rows for step in steps["four micro-batches"] for rows, _ in step}) > 1  # variable sizes
    padded = {name: [sum(rows * width for rows, width in step) for step in steps[name]] for name in steps}
    assert all(f < o for f, o in zip(padded["four micro-batches"], padded["one micro-batch"], strict=True)), padded


def _dpo_run(load_tiny, lora, spec, path, split):
    model, tok = load_tiny()
    return train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=path,
                     train=spec(max_steps=2, save_steps=100, learning_rate=2e-2, batch_rebalance=True, **split))


def test_dpo_same_pairs_split_four_ways_give_the_one_batch_losses_and_step0_is_ln2(load_tiny, lora, spec, tmp_path,
                                                                                   monkeypatch):
    """DPO's loss is a mean over a micro-batch's pairs; with micro-batches of 1..4 pairs the Trainer's plain
    accumulation would weigh a lone pair like four. Each micro-batch's factor ``n W G / N`` restores the mean
    over the step's 8 pairs: 8 x 1 and 2 x 4 agree within 1e-4 over 2 steps, step 0 is still ln 2 with a zero
    margin. With the factor switched off the 4-way split differs by more than 1e-3 (the check can fail; with one
    micro-batch a step every factor is 1, so the 8 x 1 run stands for both)."""
    one = _dpo_run(load_tiny, lora, spec, tmp_path / "one", SPLITS["one micro-batch"])
    four = _dpo_run(load_tiny, lora, spec, tmp_path / "four", SPLITS["four micro-batches"])
    assert four.losses == pytest.approx(one.losses, abs=1e-4)
    assert one.losses[-1] < math.log(2) - 1e-2  # it trained
    for run in (one, four):
        assert run.step0_loss == pytest.approx(math.log(2), abs=1e-6) and run.step0_margin == pytest.approx(0, abs=1e-6)
    assert four.levers["batch_rebalance"]["groups_per_step"] == 4
    monkeypatch.setattr(rebalance, "weigh_pairs", lambda trainer, batch_samples: None)
    plain = _dpo_run(load_tiny, lora, spec, tmp_path / "plain", SPLITS["four micro-batches"])
    assert max(abs(a - b) for a, b in zip(plain.losses, one.losses, strict=True)) > 1e-3


def test_the_run_seed_orders_the_rows(varied, load_tiny, lora, spec, tmp_path):
    """The Trainer builds BatchRebalanceSampler with its default seed 42; the guarded trainer's sampler takes the
    run's data_seed (TrainSpec.seed), so two seeds draw different micro-batches, one seed the same ones, and the
    dataloader the trainer trains from uses it."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    model, tok = load_tiny()
    rows = sft_mod.render_examples(tok, varied * 4, max_length=64, name="sft")
    orders = {}
    for seed in (3407, 1, 3407):
        trainer = sft_mod._sft_trainer(model, tok, rows, None, lora=None, train=spec(seed=seed, batch_rebalance=True,
                                                                                       batch_size=2,
                                                                                       gradient_accumulation_steps=4),
                                       output_dir=tmp_path / str(seed), callbacks=[])
        loader = trainer.get_train_dataloader().batch_sampler
        sampler = getattr(loader, "batch_sampler", loader)  # one process: accelerate adds no BatchSamplerShard
        assert isinstance(sampler, BatchRebalanceSampler) and sampler.seed == seed
        order = [tuple(b) for b in sampler]
        assert orders.setdefault(seed, order) == order
    assert orders[1] != orders[3407]
    assert sorted(i for b in orders[1] for i in b) == sorted(i for b in orders[3407] for i in b) == list(range(16))


def test_lengths_are_the_rows_the_collators_pad():
    """SFT: len(input_ids). DPO, by hand: prompt 3 + max(chosen 2, rejected 5) = 8 tokens, capped at max_length 6
    (TRL's preference collator truncates each row to max_length); the dataset's index mapping is honoured."""
    from datasets import Dataset

    sft = Dataset.from_list([{"input_ids": [1, 2, 3]}, {"input_ids": [4]}]).select([1, 0])
    assert rebalance.sft_lengths(sft) == [1, 3]
    dpo = Dataset.from_list([{"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6, 7, 8, 9, 10]},
                             {"prompt_ids": [1], "chosen_ids": [2, 3], "rejected_ids": [4]}])
    assert rebalance.dpo_lengths(dpo, None) == [8, 3]
    assert rebalance.dpo_lengths(dpo, 6) == [6, 3]


def test_the_sampling_strategy_is_owned_by_the_spec():
    kw = TrainSpec(batch_rebalance=True).trainer_kwargs("out", has_eval=False)
    assert kw["train_sampling_strategy"] == "batch_rebalance"
    assert TrainSpec().trainer_kwargs("out", has_eval=False)["train_sampling_strategy"] == "random"
    with pytest.raises(ConfigError, match="train_sampling_strategy"):
        TrainSpec(trl_overrides={"train_sampling_strategy": "batch_rebalance"})


def test_the_record_says_how_many_micro_batches_a_step_is_split_into():
    """On: ``groups_per_step = ranks x accumulation``; with one the reason says the rows are only reordered and a
    warning says so. Off: no count, the default reason."""
    on = TrainSpec(batch_rebalance=True).levers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = rebalance.rebalance_record(on, 2, 4)["batch_rebalance"]
    assert split["on"] and split["groups_per_step"] == 8 and "only reordered" not in split["reason"]
    with pytest.warns(UserWarning, match="only reorders"):
        single = rebalance.rebalance_record(on, 1, 1)["batch_rebalance"]
    assert single["groups_per_step"] == 1 and "only reordered" in single["reason"]
    off = rebalance.rebalance_record(TrainSpec().levers(), 1, 4)["batch_rebalance"]
    assert off == {"on": False, "reason": TrainSpec().levers()["batch_rebalance"]["reason"]}
    assert off["reason"].startswith("default:") and on["batch_rebalance"]["reason"].startswith("chosen:")


def test_a_resumed_run_draws_the_rebalanced_micro_batches_of_the_uninterrupted_one(varied, load_tiny, lora, spec,
                                                                                     tmp_path, monkeypatch):
    """16 rows, 8 a step: steps 1-2 are epoch 0, steps 3-4 epoch 1. Resumed from checkpoint-3, the Trainer skips
    step 3's four micro-batches of epoch 1 (accelerate's skip_first_batches wraps the batch sampler) and the
    sampler still draws epoch 1's order: step 4 sees the same micro-batches, and its loss is the same within 1e-4."""
    import shutil

    from cleanroom.training import collate

    seen: list[list[tuple]] = []
    guarded = collate._GuardedCollator.__call__

    def record(self, examples):
        batch = guarded(self, examples)
        seen[-1].append(tuple(map(tuple, batch["input_ids"].tolist())))
        return batch

    monkeypatch.setattr(collate._GuardedCollator, "__call__", record)
    train = spec(max_steps=4, save_steps=3, batch_rebalance=True, batch_size=2, gradient_accumulation_steps=4)
    out = tmp_path / "sft"
    seen.append([])
    model, tok = load_tiny()
    full = train_sft(model, tok, varied * 4, lora=lora, train=train, output_dir=out)
    shutil.rmtree(full.adapter_dir)
    shutil.rmtree(out / "checkpoint-4")  # the run is cut after step 3
    seen.append([])
    model, tok = load_tiny()
    resumed = train_sft(model, tok, varied * 4, lora=lora, train=train, output_dir=out, resume=True)
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-3")
    # the check can fail: epoch 1 orders the rows anew, and steps 3 and 4 differ, so a wrong epoch or skip shows
    assert seen[0][8:16] != seen[0][:8] and seen[0][8:12] != seen[0][12:16]
    assert seen[1][:4] == seen[0][12:16]  # step 4's micro-batches
    assert resumed.losses[-1] == pytest.approx(full.losses[-1], abs=1e-4)


def test_dpo_refuses_the_lever_on_more_than_one_rank(load_tiny, lora, spec, tmp_path, monkeypatch):
    """TRL 1.16's DPO loss all-gathers per-pair rewards, which needs equal micro-batches on every rank; rebalanced
    ones differ (on 2 gloo ranks: a size mismatch in the gather). Two ranks are refused before the trainer is built."""
    from cleanroom.training import dpo as dpo_mod

    two = {"world_size": 2, "backend": "gloo", "devices": ["cpu:0", "cpu:0"]}
    monkeypatch.setattr(dpo_mod, "distributed_spec", lambda train: (train, two))
    model, tok = load_tiny()
    with pytest.raises(ConfigError, match="batch_rebalance is not supported for DPO on 2 ranks"):
        train_dpo(model, tok, PAIRS, lora=lora, beta=0.1, output_dir=tmp_path, train=spec(batch_rebalance=True))


def test_sft_refuses_a_model_whose_step_loss_would_be_a_mean_of_micro_batch_means(varied, load_tiny, lora, spec,
                                                                                   tmp_path):
    """A model that takes no loss kwargs (``accepts_loss_kwargs = False``, as gemma4's) gets no num_items_in_batch:
    TRL divides each micro-batch by its own token count and variable-size micro-batches would weigh tokens unequally
    (1.3e-2 nats off in 3 steps on this model). The first step refuses it, naming the way out."""
    model, tok = load_tiny()
    model.accepts_loss_kwargs = False  # the Trainer reads it to decide whether to count the step's tokens
    with pytest.raises(ConfigError, match="num_items_in_batch.*batch_rebalance=False"):
        train_sft(model, tok, varied * 4, lora=lora, output_dir=tmp_path / "run",
                  train=spec(max_steps=1, save_steps=100, batch_rebalance=True, batch_size=2,
                             gradient_accumulation_steps=4))


def test_the_memory_budget_and_the_estimate_size_the_largest_rebalanced_micro_batch(spec):
    """A rebalanced micro-batch can hold up to E - K + 1 rows (each other micro-batch holds one), so the memory
    model sizes that, and the fixed-micro-batch budget is refused beside the lever."""
    from cleanroom import memory
    from cleanroom.training import LoraSpec
    from cleanroom.training.micro_batch import stage_estimate

    with pytest.raises(ConfigError, match="batch_rebalance.*micro_batch_budget_gib"):
        TrainSpec(batch_rebalance=True, micro_batch_budget_gib=40)
    assert rebalance.worst_case_rows(2, 4) == 5 and rebalance.worst_case_rows(8, 1) == 8
    assert rebalance.worst_case_rows(2, 2, world=2) == 5
    arch, lora = memory.arch_for("qwen2.5-1.5b"), LoraSpec(r=64, alpha=128)
    plain = stage_estimate(TrainSpec(batch_size=2, gradient_accumulation_steps=4), arch, "nf4", lora, dpo=False)
    rebal = stage_estimate(TrainSpec(batch_size=2, gradient_accumulation_steps=4, batch_rebalance=True), arch, "nf4",
                           lora, dpo=False)
    five = stage_estimate(TrainSpec(batch_size=5), arch, "nf4", lora, dpo=False)
    assert rebal.allocated_bytes == five.allocated_bytes > plain.allocated_bytes


def test_a_last_step_the_sampler_must_fill_with_repeated_rows_is_warned(tmp_path):
    """10 rows, 8 a step in 4 micro-batches: the last step holds 2 rows for 4 micro-batches, and the sampler fills it
    with rows from the epoch's start; the run says so. 12 rows (a last step of 4) do not warn."""
    from types import SimpleNamespace

    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=2, gradient_accumulation_steps=4,
                             report_to=[], use_cpu=True)
    trainer = SimpleNamespace(args=args)
    with pytest.warns(UserWarning, match="last step of 2 rows for 4 micro-batches.*2 rows repeated"):
        rebalance.rebalance_sampler(trainer, [5, 9, 3, 7, 1, 2, 8, 4, 6, 10])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = rebalance.rebalance_sampler(trainer, list(range(1, 13)))
    assert sorted(i for batch in sampler for i in batch) == list(range(12))
