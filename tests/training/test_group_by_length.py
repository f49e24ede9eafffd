"""TrainSpec.group_by_length: transformers' LengthGroupedSampler, seeded by the run, over the rendered rows' lengths."""

from __future__ import annotations

import random

import pytest

from cleanroom.errors import ConfigError
from cleanroom.training import TrainSpec, train_dpo, train_sft

pytestmark = pytest.mark.slow

WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight")


def _examples(n: int) -> list[dict[str, str]]:
    """``n`` prompt/completion pairs whose completions run 1..n words, in a shuffled order."""
    sizes = list(range(1, n + 1))
    random.Random(5).shuffle(sizes)
    return [{"prompt": "Count:", "completion": "".join(" " + WORDS[i % 8] for i in range(k))} for k in sizes]


def _pairs(n: int) -> list[dict[str, str]]:
    """Pairs whose two sides have the same number of words (other words), 1..n: a pair's length is its longer side."""
    return [{"prompt": "Count:", "chosen": ex["completion"], "rejected": ex["completion"].replace("o", "a")}
            for ex in _examples(n)]


def _record_batches(monkeypatch):
    """Each batch the guarded collator hands a trainer, as (padded tokens, real row lengths, real lengths of the first
    half of the rows: a DPO batch's chosen rows), per run label."""
    from cleanroom.training import collate

    seen: dict[str, list[tuple[int, list[int]]]] = {}
    label: list[str] = []
    guarded = collate._GuardedCollator.__call__

    def record(self, examples):
        batch = guarded(self, examples)
        mask = batch["attention_mask"]
        real = mask.sum(1).tolist()
        seen.setdefault(label[-1], []).append((mask.numel(), sorted(real), sorted(real[:len(real) // 2])))
        return batch

    monkeypatch.setattr(collate._GuardedCollator, "__call__", record)
    return seen, label


def test_group_by_length_and_batch_rebalance_both_set_the_sampler_so_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="group_by_length"):
        TrainSpec(group_by_length=True, batch_rebalance=True)
    assert TrainSpec(group_by_length=True).trainer_kwargs("out", has_eval=False)["train_sampling_strategy"] == \
        "group_by_length"


def test_sft_grouped_batches_are_transformers_length_groups_seeded_by_the_run_and_pad_less(load_tiny, lora, spec,
                                                                                           tmp_path, monkeypatch):
    """48 rows of 48 lengths, batches of 4, one epoch (12 steps): the grouped epoch is exactly
    ``get_length_grouped_indices`` of the rows' lengths under the run's seed (not the global RNG), holds the same
    rows as the random epoch (each once) and pads at least 15% fewer tokens (megabatches of 3 batches here)."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from cleanroom.training.sft import render_examples

    seen, label = _record_batches(monkeypatch)
    data = _examples(48)
    runs = {}
    for name, grouped in (("random", False), ("grouped", True)):
        model, tok = load_tiny()
        label.append(name)
        runs[name] = train_sft(model, tok, data, lora=lora, output_dir=tmp_path / name,
                               train=spec(max_steps=12, batch_size=4, save_steps=100, max_length=128,
                                          group_by_length=grouped))
    epoch = {name: seen[name][:12] for name in runs}
    rows = {name: sorted(n for _, lengths, _ in batches for n in lengths) for name, batches in epoch.items()}
    assert rows["grouped"] == rows["random"] and len(rows["random"]) == 48  # every row once, none lost or repeated
    padded = {name: sum(p for p, _, _ in batches) for name, batches in epoch.items()}
    assert padded["grouped"] < 0.85 * padded["random"], padded
    lengths = [len(r["input_ids"]) for r in render_examples(tok, data, max_length=128, name="test")]
    order = get_length_grouped_indices(lengths, 4, generator=torch.Generator().manual_seed(3407))
    assert [row_lengths for _, row_lengths, _ in epoch["grouped"]] == \
        [sorted(lengths[i] for i in order[k:k + 4]) for k in range(0, 48, 4)]
    assert runs["grouped"].levers["group_by_length"]["on"] and not runs["random"].levers["group_by_length"]["on"]
    assert "LengthGroupedSampler" in runs["grouped"].levers["group_by_length"]["reason"]


def test_dpo_batches_are_transformers_length_groups_of_the_pairs_and_step0_is_still_ln2(load_tiny, lora, spec,
                                                                                        tmp_path, monkeypatch):
    """DPO rows have no ``input_ids`` column (the Trainer's own grouped sampler would refuse them): the lengths are
    each pair's ``prompt + max(chosen, rejected)`` from the rendered columns, and the generator is seeded with the
    run's seed. So the epoch's batches are exactly ``get_length_grouped_indices`` of those lengths under that seed
    (checked by the chosen rows' lengths, batch by batch) and hold the same pairs as a random epoch (16 pairs make
    megabatches of one batch, so no padding is saved here: the SFT test shows that). train_dpo's step-0 check (ln 2,
    margin 0) passes."""
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from cleanroom.training.dpo import render_pairs

    seen, label = _record_batches(monkeypatch)
    runs = {}
    for name, grouped in (("random", False), ("grouped", True)):
        model, tok = load_tiny()
        label.append(name)
        runs[name] = train_dpo(model, tok, _pairs(16), lora=lora, beta=0.1, output_dir=tmp_path / name,
                               train=spec(max_steps=4, batch_size=4, save_steps=100, max_length=128,
                                          group_by_length=grouped))
    epoch = {name: seen[name][-4:] for name in runs}  # the step-0 check's batch comes first
    rows = {name: sorted(n for _, lengths, _ in batches for n in lengths) for name, batches in epoch.items()}
    assert rows["grouped"] == rows["random"] and len(rows["random"]) == 32  # 16 pairs, chosen and rejected rows
    rendered = render_pairs(tok, _pairs(16), 128)
    lengths = [len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in rendered]
    order = get_length_grouped_indices(lengths, 4, generator=torch.Generator().manual_seed(3407))
    expected = [sorted(len(rendered[i]["prompt_ids"]) + len(rendered[i]["chosen_ids"]) for i in order[k:k + 4])
                for k in range(0, 16, 4)]
    assert [chosen for _, _, chosen in epoch["grouped"]] == expected
    assert runs["grouped"].step0_loss == pytest.approx(0.6931, abs=1e-3)
    assert runs["grouped"].levers["group_by_length"]["on"]


def test_a_resumed_run_draws_the_grouped_batches_of_the_uninterrupted_one(load_tiny, lora, spec, tmp_path,
                                                                          monkeypatch):
    """16 rows, 4 a step: steps 1-4 are epoch 0, steps 5-6 epoch 1. Each epoch's order comes from a generator seeded
    ``seed + epoch`` (set_epoch), so a run resumed from checkpoint-5 draws epoch 1's order again, skips step 5's
    batch and trains step 6 on the uninterrupted run's batch, to the same loss. A generator seeded once would replay
    epoch 0's order after the resume (the check fails then: epoch 1's batches differ from epoch 0's)."""
    import shutil

    seen, label = _record_batches(monkeypatch)
    train = spec(max_steps=6, save_steps=5, batch_size=4, max_length=128, group_by_length=True)
    out = tmp_path / "sft"
    label.append("full")
    model, tok = load_tiny()
    full = train_sft(model, tok, _examples(16), lora=lora, train=train, output_dir=out)
    shutil.rmtree(full.adapter_dir)
    shutil.rmtree(out / "checkpoint-6")  # the run is cut after step 5
    label.append("resumed")
    model, tok = load_tiny()
    resumed = train_sft(model, tok, _examples(16), lora=lora, train=train, output_dir=out, resume=True)
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-5")
    assert seen["full"][4:6] != seen["full"][0:2]  # epoch 1 is ordered anew
    assert seen["resumed"][:1] == seen["full"][5:6]  # step 6's batch
    assert resumed.losses[-1] == pytest.approx(full.losses[-1], abs=1e-4)

