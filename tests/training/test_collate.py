"""The guarded collators refuse a planted control token, a stray or missing EOS, an unsupervised EOS, a loss on the prompt."""

from __future__ import annotations

import pytest

from cleanroom.errors import ContaminationError
from cleanroom.training.collate import GuardedLanguageModelingCollator, GuardedPreferenceCollator


@pytest.fixture(scope="module")
def tok(tiny_base_model):
    from cleanroom.loader import CleanModelLoader

    return CleanModelLoader(tiny_base_model, probe=False).load_tokenizer()[0]


def test_clean_batch_passes_and_is_counted(tok):
    c = GuardedLanguageModelingCollator(tok)
    batch = c([{"input_ids": [9707, 1879, 151643], "labels": [-100, 1879, 151643], "prompt_length": 1},
               {"input_ids": [9707, 151643], "labels": [-100, 151643], "prompt_length": 1}])
    assert batch["input_ids"].tolist() == [[9707, 1879, 151643], [9707, 151643, 151643]]  # pad = EOS, masked
    assert (c.batches_seen, c.tokens_seen) == (1, 5)


@pytest.mark.parametrize(
    ("ids", "labels", "match"),
    [
        ([9707, 151644, 1879, 151643], [-100, -100, 1879, 151643], "151644"),  # <|im_start|> planted
        ([9707, 151643, 1879, 151643], [-100, 151643, 1879, 151643], "EOS before the end"),
        ([9707, 1879], [-100, 1879], "not EOS"),
        ([9707, 1879, 151643], [-100, 1879, -100], "not supervised"),
    ],
)
def test_lm_collator_refuses(tok, ids, labels, match):
    with pytest.raises(ContaminationError, match=match):
        GuardedLanguageModelingCollator(tok)([{"input_ids": ids, "labels": labels, "prompt_length": 1}])


def test_lm_collator_messages_name_the_first_bad_row(tok):
    """Row 0 is clean, rows 1 and 2 lack their EOS label: the vectorised check names row 1, as the row walk did."""
    rows = [{"input_ids": [9707, 151643], "labels": [-100, 151643], "prompt_length": 1},
            {"input_ids": [9707, 1879, 151643], "labels": [-100, 1879, -100], "prompt_length": 1},
            {"input_ids": [1879, 151643], "labels": [-100, -100], "prompt_length": 1}]
    with pytest.raises(ContaminationError) as e:
        GuardedLanguageModelingCollator(tok)(rows)
    assert str(e.value) == ("sft batch 0 row 1: the final EOS 151643 is not supervised (label -100); the model would "
                            "never learn to stop — render examples with guard.render_example")


# Prompt = [9707, 1879] (2 tokens), completion = [21806] + EOS.
PROMPT_2 = [9707, 1879, 21806, 151643]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (PROMPT_2, "row 0: prompt token 0 of 2 carries loss \\(label 9707\\).*whole-sequence"),  # whole-sequence loss
        ([-100, 1879, 21806, 151643], "prompt token 1 of 2 carries loss \\(label 1879\\)"),  # boundary off by one
        ([-100, -100, -100, 151643], "completion token 2 \\(prompt 2, length 4\\) carries no loss"),
        ([-100, -100, 9707, 151643], "completion token 2 has label 9707 but input ID 21806"),
    ],
)
def test_lm_collator_checks_the_loss_mask_against_the_prompt(tok, labels, match):
    with pytest.raises(ContaminationError, match=match):
        GuardedLanguageModelingCollator(tok)([{"input_ids": PROMPT_2, "labels": labels, "prompt_length": 2}])


def test_lm_collator_catches_a_dropped_labels_column(tok):
    """Without ``labels`` TRL's collator trains on ``input_ids`` everywhere: the whole sequence."""
    with pytest.raises(ContaminationError, match="prompt token 0 of 2 carries loss"):
        GuardedLanguageModelingCollator(tok)([{"input_ids": PROMPT_2, "prompt_length": 2}])


def test_lm_collator_fails_closed_without_prompt_length(tok):
    with pytest.raises(ContaminationError, match="example 0 has no integer prompt_length"):
        GuardedLanguageModelingCollator(tok)([{"input_ids": PROMPT_2, "labels": [-100, -100, 21806, 151643]}])


def test_lm_collator_refuses_a_row_with_no_completion(tok):
    with pytest.raises(ContaminationError, match="prompt length 4 leaves no completion token in 4"):
        GuardedLanguageModelingCollator(tok)([{"input_ids": PROMPT_2, "labels": [-100, -100, -100, 151643],
                                                   "prompt_length": 4}])


def test_preference_collator_refuses_planted_control_token(tok):
    c = GuardedPreferenceCollator(tok)
    ok = {"prompt_ids": [9707], "chosen_ids": [1879, 151643], "rejected_ids": [9707, 151643]}
    assert c([ok])["input_ids"].shape == (2, 3)
    with pytest.raises(ContaminationError, match="151645"):
        c([{**ok, "rejected_ids": [151645, 151643]}])


def test_preference_collator_checks_the_prompt_is_out_of_the_logp_sums(tok):
    """The DPO sums run over ``completion_mask``: 0 on the 2 prompt tokens and the pad, 1 on the completion + EOS."""
    from cleanroom import guard

    pair = {"prompt_ids": [9707, 1879], "chosen_ids": [1879, 151643], "rejected_ids": [9707, 9707, 151643]}
    batch = GuardedPreferenceCollator(tok)([pair])
    assert batch["completion_mask"].tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]
    lengths = batch["attention_mask"].sum(dim=1)
    with pytest.raises(ContaminationError, match="dpo batch 0 row 0: prompt token 0 of 2 carries loss;"):
        guard.check_loss_mask(batch["attention_mask"], [2, 2], lengths, where="dpo batch 0")  # prompt summed too
    padded_loss = batch["completion_mask"].clone()
    padded_loss[0, 4] = 1  # row 0 has 4 real tokens; position 4 is its pad
    with pytest.raises(ContaminationError, match="row 0: padding position 4 \\(real length 4\\) carries loss"):
        guard.check_loss_mask(padded_loss, [2, 2], lengths, where="dpo batch 0")


def _packed(tok, rows):
    return GuardedLanguageModelingCollator(tok, padding_free=True)(rows)


ROW_A = {"input_ids": [9707, 1879, 21806, 151643], "labels": [-100, -100, 21806, 151643], "prompt_length": 2}
ROW_B = {"input_ids": [9707, 21806, 151643], "labels": [-100, 21806, 151643], "prompt_length": 1}


def test_padding_free_batch_is_one_row_checked_per_packed_sequence(tok):
    c = GuardedLanguageModelingCollator(tok, padding_free=True)
    batch = c([ROW_A, ROW_B])
    assert batch["input_ids"].tolist() == [ROW_A["input_ids"] + ROW_B["input_ids"]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    assert "attention_mask" not in batch
    assert (c.batches_seen, c.tokens_seen) == (1, 7)  # 4 + 3 real tokens, no pad


@pytest.mark.parametrize(
    ("row_b", "match"),
    [
        ({**ROW_B, "input_ids": [151644, 21806, 151643]}, "record 1, token 0 is ID 151644"),  # in the 2nd sequence
        ({**ROW_B, "labels": [9707, 21806, 151643], "prompt_length": 2}, "row 1: prompt token 1 of 2 carries loss"),
        ({**ROW_B, "labels": [-100, 21806, -100]}, "row 1: the final EOS 151643 is not supervised"),
        ({**ROW_B, "input_ids": [9707, 151643, 151643], "labels": [-100, 151643, 151643]}, "record 1, token 1"),
    ],
)
def test_padding_free_guard_names_the_packed_sequence(tok, row_b, match):
    """Packed, A's EOS is followed by B's first token: each check must still see two sequences, not one."""
    with pytest.raises(ContaminationError, match=match):
        _packed(tok, [ROW_A, row_b])


def test_padding_free_refuses_positions_that_do_not_restart(tok):
    """One arange over the packed row would let B attend to A: the guard checks the restarts."""
    from cleanroom.training.collate import _unpack

    batch = GuardedLanguageModelingCollator(tok, padding_free=True)._inner([ROW_A, ROW_B])
    batch["position_ids"] = batch["position_ids"].new_tensor([list(range(7))])
    with pytest.raises(ContaminationError, match="position 4 differs"):
        _unpack(batch, [4, 3], 151643, "sft batch 0")
