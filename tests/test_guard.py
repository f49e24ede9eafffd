"""The guard keeps its promises: forbidden set by ID, vectorised scan_ids, render_example and check_pair rules."""

from __future__ import annotations

import numpy as np
import pytest

from cleanroom import guard
from cleanroom.errors import ContaminationError, InputError


@pytest.fixture(scope="module")
def tok(qwen_base_tokenizer):
    from cleanroom.loader import CleanModelLoader

    tokenizer, _ = CleanModelLoader(qwen_base_tokenizer, probe=False).load_tokenizer()
    return tokenizer


def test_forbidden_set_is_qwen_control_range_without_eos(tok):
    """Qwen2.5: 151644..151664 (21 IDs, special and non-special control tokens), base EOS 151643 excluded."""
    assert guard.forbidden_ids(tok) == frozenset(range(151644, 151665))
    assert guard.base_eos_id(tok) == 151643


def test_forbidden_set_of_raw_tokenizer_also_covers_non_special_controls(qwen_base_tokenizer):
    from transformers import AutoTokenizer

    raw = AutoTokenizer.from_pretrained(str(qwen_base_tokenizer))
    assert guard.forbidden_ids(raw) == frozenset(range(151644, 151665))


def test_scan_ids_names_record_position_and_token(tok):
    seqs = [[9707, 1879], [9707, 151644, 1879]]
    with pytest.raises(ContaminationError, match=r"record 1, token 1 is ID 151644 '<\|im_start\|>'"):
        guard.scan_ids(seqs, guard.forbidden_ids(tok), tokenizer=tok)


def test_scan_ids_padded_batch_excludes_pad_by_mask_left_and_right():
    forbidden = frozenset({7})
    batch = np.array([[7, 7, 1, 2], [1, 2, 7, 7]])
    left = np.array([[0, 0, 1, 1], [1, 1, 0, 0]])
    guard.scan_ids(batch, forbidden, mask=left)
    guard.scan_ids(batch[1:], forbidden, lengths=[2])
    with pytest.raises(ContaminationError, match="record 0, token 0"):
        guard.scan_ids(batch, forbidden)


def test_scan_ids_accepts_torch_tensor():
    import torch

    with pytest.raises(ContaminationError, match="record 0, token 2"):
        guard.scan_ids(torch.tensor([[1, 2, 9]]), frozenset({9}))


@pytest.mark.parametrize(
    ("seq", "message"),
    [([1, 2, 0, 0], "doubled EOS"), ([1, 2], "EOS missing"), ([0, 1, 0], "doubled EOS"), ([], "empty")],
)
def test_scan_ids_final_eos_rules(seq, message):
    with pytest.raises(ContaminationError, match=message):
        guard.scan_ids([[5, 0], seq], frozenset(), final_eos_id=0)


def test_scan_ids_single_final_eos_passes_and_negative_ids_rejected():
    guard.scan_ids([[5, 0], [1, 2, 3, 0]], frozenset({9}), final_eos_id=0)
    with pytest.raises(InputError, match="negative"):
        guard.scan_ids([[-100, 1]], frozenset())


def test_render_example_ids_and_labels(tok):
    """'Q: hi\\nA:' + ' hello' -> prompt ids, completion ids, EOS; labels -100 on the prompt only."""
    out = guard.render_example(tok, "Q: hi\nA:", " hello", max_length=64, record=3)
    p = guard.encode(tok, "Q: hi\nA:")
    c = guard.encode(tok, " hello")
    assert out["input_ids"] == p + c + [151643]
    assert out["labels"] == [-100] * len(p) + c + [151643]


def test_render_example_rejects_each_bad_case(tok):
    with pytest.raises(ContaminationError, match="not a prefix"):
        guard.render_example(tok, "Q: hi ", "there", max_length=64, record=1)  # " there" merges the space
    with pytest.raises(ContaminationError, match="empty completion"):
        guard.render_example(tok, "Q:", "", max_length=64)
    with pytest.raises(ContaminationError, match="exceed max_length=3"):
        guard.render_example(tok, "Q: hi", " hello world", max_length=3)


def test_render_example_literal_control_text_is_ordinary_subwords(tok):
    out = guard.render_example(tok, "<|im_start|>user\n", "<|im_end|><|endoftext|>", max_length=64)
    assert not set(out["input_ids"]) & guard.forbidden_ids(tok)
    assert out["input_ids"].count(151643) == 1


def test_check_pair(tok):
    guard.check_pair(tok, "Q: 2+2?\nA:", " 4", " 5", max_length=32, record=7)
    with pytest.raises(InputError, match="identical"):
        guard.check_pair(tok, "Q:", " a", " a", max_length=32)
    with pytest.raises(ContaminationError, match="7 rejected"):
        guard.check_pair(tok, "Q:", " a", "", max_length=32, record=7)


def test_literal_control_strings(tok):
    assert [t for _, t in guard.literal_control_strings(tok, "x <|im_start|>assistant <|fim_prefix|>")] == [
        "<|im_start|>",
        "<|fim_prefix|>",
    ]
    assert guard.literal_control_strings(tok, "<b>im_start</b> <|im a cat|>") == []


def test_recheck_detects_pad_rewrite_and_template(tok):
    guard.recheck(None, tok)
    tok.chat_template = "{{ messages }}"
    try:
        with pytest.raises(ContaminationError, match="chat_template"):
            guard.recheck(None, tok)
    finally:
        tok.chat_template = None
    guard.recheck(None, tok)


def test_recheck_detects_add_eos_and_swapped_apply_chat_template(tok):
    tok.add_eos_token = True
    try:
        with pytest.raises(ContaminationError, match="add_eos_token: False -> True"):
            guard.recheck(None, tok)
    finally:
        tok.add_eos_token = False
    tok.apply_chat_template = lambda *a, **k: "<|im_start|>"
    try:
        with pytest.raises(ContaminationError, match="apply_chat_template_refused: True -> False"):
            guard.recheck(None, tok)
    finally:
        tok.apply_chat_template = guard.refuse_chat_template
    guard.recheck(None, tok)


def test_check_loss_mask_by_hand():
    """Rows of lengths 5 and 3, prompts of 2 and 1 tokens: supervised exactly at t in [P, L).

    Row 0: t = 2, 3, 4 -> [0, 0, 1, 1, 1];  row 1: t = 1, 2 (t = 3, 4 are pad) -> [0, 1, 1, 0, 0].
    Each single flip of that mask is one finding, named by row and position.
    """
    import torch

    from cleanroom.guard import check_loss_mask

    good = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]], dtype=torch.bool)
    check_loss_mask(good, [2, 1], [5, 3])
    for (row, t), why in {(0, 0): "row 0: prompt token 0 of 2 carries loss", (0, 1): "row 0: prompt token 1 of 2",
                          (0, 4): "row 0: completion token 4 \\(prompt 2, length 5\\) carries no loss",
                          (1, 3): "row 1: padding position 3 \\(real length 3\\)"}.items():
        bad = good.clone()
        bad[row, t] = ~bad[row, t]
        with pytest.raises(ContaminationError, match=why):
            check_loss_mask(bad, [2, 1], [5, 3], where="b")
    with pytest.raises(ContaminationError, match="row 1: prompt length 3 leaves no completion token in 3"):
        check_loss_mask(good & torch.tensor([[True], [False]]), [2, 3], [5, 3])
    with pytest.raises(InputError, match="2 prompt lengths and 1 lengths for 2 rows"):
        check_loss_mask(good, [2, 1], [5])


def test_render_example_boundary_merge_names_both_token_strings_and_the_fix(tok):
    """'rain.' + 'Soft' pre-tokenises as '.Soft' (no trailing space involved): the message shows '.' and
    '.Soft' and asks for a separator; with one (a newline or a leading space) the example renders."""
    with pytest.raises(ContaminationError) as info:
        guard.render_example(tok, "Write a haiku about rain.", "Soft rain...", max_length=64, record=2)
    message = str(info.value)
    assert "ends in '.'" in message and "'.Soft'" in message and "separator" in message
    assert "trailing" not in message
    with pytest.raises(ContaminationError, match="trailing whitespace"):
        guard.render_example(tok, "Q: hi ", "there", max_length=64, record=1)
    guard.render_example(tok, "Write a haiku about rain.\n", "Soft rain...", max_length=64)
    guard.render_example(tok, "Write a haiku about rain.", " Soft rain...", max_length=64)
