"""The guarded collators refuse a planted control token, a stray or missing EOS, an unsupervised EOS."""

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
    batch = c([{"input_ids": [9707, 1879, 151643], "labels": [-100, 1879, 151643]},
               {"input_ids": [9707, 151643], "labels": [-100, 151643]}])
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
        GuardedLanguageModelingCollator(tok)([{"input_ids": ids, "labels": labels}])


def test_preference_collator_refuses_planted_control_token(tok):
    c = GuardedPreferenceCollator(tok)
    ok = {"prompt_ids": [9707], "chosen_ids": [1879, 151643], "rejected_ids": [9707, 151643]}
    assert c([ok])["input_ids"].shape == (2, 3)
    with pytest.raises(ContaminationError, match="151645"):
        c([{**ok, "rejected_ids": [151645, 151643]}])
