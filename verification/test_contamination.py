"""Every contamination route is caught by the guard on the real Qwen2.5 vocabulary; the clean path never alarms."""

from __future__ import annotations

import random

import pytest

from cleanroom import guard
from cleanroom.errors import ContaminationError
from cleanroom.loader import CleanModelLoader, clean_model


@pytest.fixture(scope="module")
def tok(qwen_base_tokenizer):
    tokenizer, _ = CleanModelLoader(qwen_base_tokenizer, probe=False).load_tokenizer()
    return tokenizer


def _chatml(tok, text):
    return [151644] + guard.encode(tok, "user\n" + text) + [151645, 151644] + guard.encode(tok, "assistant\n")


def route_template_reenabled(tok):
    tok.chat_template = "{{ messages }}"
    try:
        guard.recheck(None, tok)
    finally:
        tok.chat_template = None


def route_apply_chat_template(tok):
    tok.apply_chat_template([{"role": "user", "content": "hi"}])


def route_chatml_wrapped_prompt(tok):
    guard.scan_ids([_chatml(tok, "hi")], guard.forbidden_ids(tok), tokenizer=tok)


def route_literal_control_became_id(tok):
    ids = tok("<|im_start|>assistant", split_special_tokens=False)["input_ids"]  # a raw, unguarded encode
    guard.scan_ids([ids], guard.forbidden_ids(tok), tokenizer=tok)


def route_bos_injected(tok):
    # Qwen2.5's config names 151643 as bos_token_id: a collator that "adds BOS" puts it first
    guard.scan_ids([[151643] + guard.encode(tok, "Q: hi") + [151643]], guard.forbidden_ids(tok), final_eos_id=151643)


def route_eos_doubled(tok):
    guard.scan_ids([guard.encode(tok, "A: ok") + [151643, 151643]], guard.forbidden_ids(tok), final_eos_id=151643)


def route_eos_truncated(tok):
    guard.render_example(tok, "Q: hi\nA:", " a long answer that will not fit", max_length=6)


def route_eos_missing(tok):
    guard.scan_ids([guard.encode(tok, "A: ok")], guard.forbidden_ids(tok), final_eos_id=151643)


def _clean_tiny_model(tok):
    """A one-layer Qwen2 of the real vocabulary, cleaned and snapshotted as the loader leaves it."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=151936, hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                         num_attention_heads=1, num_key_value_heads=1))
    model.generation_config = GenerationConfig(eos_token_id=151643)
    clean_model(model, 151643)
    setattr(model, guard.SNAPSHOT_ATTR, guard.snapshot(model, tok)["model"])
    return model


def route_im_end_as_generation_eos(tok):
    model = _clean_tiny_model(tok)
    model.generation_config.eos_token_id = [151645, 151643]
    guard.recheck(model, tok)


def route_im_end_as_forced_eos(tok):
    # eos stays clean, but generation is forced to end on <|im_end|>: only the whole-config comparison sees it
    model = _clean_tiny_model(tok)
    model.generation_config.forced_eos_token_id = 151645
    guard.recheck(model, tok)


def route_add_eos_token_reenabled(tok):
    # tok("Hello") silently gains EOS: the flag and the plain encode in the snapshot both change
    tok.add_eos_token = True
    try:
        guard.recheck(None, tok)
    finally:
        tok.add_eos_token = False


def route_apply_chat_template_swapped(tok):
    # a library puts its own apply_chat_template back on the instance: the attribute exists, but renders ChatML
    tok.apply_chat_template = lambda messages, **kwargs: "<|im_start|>user\n" + messages[0]["content"]
    try:
        guard.recheck(None, tok)
    finally:
        tok.apply_chat_template = guard.refuse_chat_template


def route_trainer_rewrites_pad(tok):
    tok.pad_token = "<|im_end|>"
    try:
        guard.recheck(None, tok)
    finally:
        tok.pad_token = "<|endoftext|>"


def route_instruct_model(tok):
    from cleanroom.probe import probe_model

    class Gen:
        eos_token_id = [151645, 151643]

    result = probe_model(tok, generation_config=Gen(), names=("Qwen2.5-0.5B-Instruct",))
    CleanModelLoader("Qwen2.5-0.5B-Instruct")._decide(result)


def _sft_row(tok, prompt, completion):
    r = guard.render_example(tok, prompt, completion, max_length=64) or {}  # None with the guard switched off
    ids = r.get("input_ids") or guard.encode(tok, prompt + completion) + [151643]
    return ids, len(guard.encode(tok, prompt))


def route_sft_whole_sequence_loss(tok):
    # labels = input_ids: the loss runs over the prompt too (the Qwen2.5-32B constitutional project's Stage 1 bug)
    from cleanroom.training.collate import GuardedLanguageModelingCollator

    ids, n_prompt = _sft_row(tok, "Q: what is 2+2?\nA:", " 4")
    GuardedLanguageModelingCollator(tok)([{"input_ids": ids, "labels": list(ids), "prompt_length": n_prompt}])


def route_sft_labels_column_dropped(tok):
    # a dataset step that loses "labels": TRL's collator then defaults them to input_ids (whole-sequence loss)
    from cleanroom.training.collate import GuardedLanguageModelingCollator

    ids, n_prompt = _sft_row(tok, "Q: name a colour.\nA:", " blue")
    GuardedLanguageModelingCollator(tok)([{"input_ids": ids, "prompt_length": n_prompt}])


def route_dpo_prompt_in_logp_sums(tok):
    # a preference collator whose completion_mask covers the prompt: log p(prompt) enters both sides' sums
    from cleanroom.training.collate import GuardedPreferenceCollator

    class WholeSequence(GuardedPreferenceCollator):
        def _inner_collator(self, pad_id):
            inner = super()._inner_collator(pad_id)

            def collate(examples):
                batch = inner(examples)
                batch["completion_mask"] = batch["attention_mask"].clone()
                return batch

            return collate

    prompt = guard.encode(tok, "Q: yes or no?\nA:")
    WholeSequence(tok)([{"prompt_ids": prompt, "chosen_ids": guard.encode(tok, " yes") + [151643],
                         "rejected_ids": guard.encode(tok, " no") + [151643]}])


ROUTES = [v for k, v in dict(globals()).items() if k.startswith("route_")]


@pytest.mark.parametrize("route", ROUTES, ids=lambda f: f.__name__[6:])
def test_route_detected(tok, route):
    with pytest.raises(ContaminationError):
        route(tok)


@pytest.mark.parametrize("route", ROUTES, ids=lambda f: f.__name__[6:])
def test_each_route_passes_silently_with_the_guard_switched_off(tok, route, monkeypatch):
    """Meta-test: every route above is caught by the guard and by nothing else.

    With the guard's entry points made no-ops (the scan, the recheck, the example renderer, the loss-mask
    check, the base-or-instruct decision and the cleaned tokenizer's template refusal), each route runs
    through without an error: so ``test_route_detected`` fails for every case when its guard is off — a
    whole-sequence-loss batch included.
    """
    for owner, name in ((guard, "scan_ids"), (guard, "recheck"), (guard, "render_example"),
                        (guard, "check_loss_mask"), (CleanModelLoader, "_decide")):
        monkeypatch.setattr(owner, name, lambda *a, **k: None)
    monkeypatch.setattr(tok, "apply_chat_template", lambda *a, **k: "")
    route(tok)


def test_zero_false_alarms_on_1000_clean_prompts(tok, cleanroom_seed):
    rng = random.Random(cleanroom_seed)
    words = ["the", "cat", "<b>im_start</b>", "<|im a cat|>", "user:", "assistant", "naïve", "日本", "🙂", "\n", "  ",
             "im_end", "|>", "<|", "endoftext", "42", "def f():", "<tool", "call>"]
    for i in range(1000):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + "\nA:"
        completion = " " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        out = guard.render_example(tok, prompt, completion, max_length=512, record=i)
        assert out["input_ids"][-1] == 151643
