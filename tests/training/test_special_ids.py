"""Trainer token alignment: equivalent ID rewrites are undone, a new control ID is left for recheck."""

from __future__ import annotations

import pytest

from cleanroom import guard
from cleanroom.errors import ContaminationError
from cleanroom.training.special_ids import undo_trainer_token_alignment


@pytest.fixture()
def model_and_tok(tiny_base_model):
    from cleanroom.loader import CleanModelLoader

    model, tok, _ = CleanModelLoader(tiny_base_model, dtype="float32", probe=False).load()
    return model, tok


def test_equivalent_rewrites_are_undone(model_and_tok) -> None:
    model, tok = model_and_tok
    model.config.bos_token_id = None  # what transformers 5.17's align_special_tokens does to a no-BOS tokenizer
    model.generation_config.bos_token_id = None  # ... on both configs (seen on the GPU image)
    model.generation_config.eos_token_id = [151643]
    changed = undo_trainer_token_alignment(model)
    assert changed, "the rewrite should have been reported"
    guard.recheck(model, tok)  # clean again


def test_a_new_control_id_is_not_papered_over(model_and_tok) -> None:
    model, tok = model_and_tok
    model.generation_config.eos_token_id = [151645, 151643]  # <|im_end|> smuggled in as EOS
    undo_trainer_token_alignment(model)
    assert 151645 in model.generation_config.eos_token_id
    with pytest.raises(ContaminationError):
        guard.recheck(model, tok)
