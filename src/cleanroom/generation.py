"""Guarded generation: the one entry point every stage, ``eval run`` and the GPU gate generate through.

The loader loads; this module generates. Engines sit behind one setting, ``generation.engine``:

* ``hf`` — ``model.generate`` with the dynamic KV cache: the reference every other engine is held to.
* ``static`` — a static KV cache, which transformers compiles (``torch.compile`` of the decode step) on
  CUDA when the weights allow it; shapes are bucketed (every batch padded to ``batch_size`` rows, prompt
  width rounded up to :data:`WIDTH_BUCKET`) so one compiled graph serves a whole stage instead of one per
  batch. On the CPU it is the same static cache, uncompiled. On a 4-bit (nf4/fp4) model it decodes with
  the weights dequantized once, when they fit (:func:`dense_decoding`): the products are the ones
  bitsandbytes computes for a batch anyway, without dequantizing every weight at every step.
* ``paged`` — transformers' continuous batching (paged attention): a finished sequence frees its slot at
  once, so a batch never waits for its longest member. Greedy only (see below).
* ``auto`` — :func:`choose_engine` (:mod:`cleanroom.engine_choice`): the fastest engine that supports the
  requested settings on the model's device and precision; the choice and its reason go into the run log and
  the stage provenance.

The three engines share the entry point, the guard calls and the result shaping, side by side here so a
reviewer can check they keep the same promises; the 4-bit dense decoding is :mod:`cleanroom.dense_decoding`,
the greedy-parity measure every engine is held to is :mod:`cleanroom.greedy_parity`.

What every engine guarantees, checked by ``tests/test_generation.py`` and the GPU gate:

* the guard: :func:`guard.recheck` on the model/tokenizer, every prompt batch's IDs through
  :func:`guard.scan_ids` before generation (``where="generation batch <b>"``), every returned sequence's
  IDs through it after (``"generation output <b>"``). The forbidden IDs (chat-control and other added
  tokens) are also suppressed in the logits, so a base model cannot write one into data;
* a sequence stops as soon as it emits the base EOS or completes a stop string (transformers'
  ``StopStringCriteria``, or a cancelled request on the paged engine), not after ``max_new_tokens``;
* greedy decoding (``temperature == 0``) gives ``hf``'s tokens;
* sampling is seeded **per record**: prompt *i* draws its uniforms ``u[i, t]`` (one per step) from its own
  ``torch.Generator(seed_i)``, and the token is the inverse CDF of the (temperature-scaled, top-p-filtered)
  distribution at ``u[i, t]``. A record's text therefore depends on its seed and its own logits only —
  not on its neighbours in the batch or on whether its stage was killed and resumed (a resumed stage
  regenerates the same batch). One numerical caveat: ``hf`` pads each batch to its own longest prompt, so
  another batch size changes the padding and the logits in their last bits, and where the sampled
  distribution is flat (a random model at temperature 1) that can move a draw across a CDF boundary;
  ``static`` pads every batch to fixed width buckets and gives the same records at any batch size while the
  prompts stay in one bucket. Transformers' continuous batching samples from one generator shared by all requests, so ``paged`` refuses
  ``temperature > 0`` with a :class:`ConfigError` instead of sampling differently.

``token_counts`` are the tokens kept in the text (cut at EOS/stop, EOS excluded); ``generated_counts`` the
tokens the engine actually produced (EOS and the stop string's tokens included): their difference is the
decoding spent after the answer ended.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import numbers
import time
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import Field

from cleanroom import guard
from cleanroom.dense_decoding import dense_decoding, dequantized, release_dense
from cleanroom.engine_choice import ENGINES, choose_engine
from cleanroom.errors import CleanroomError, ConfigError, InputError
from cleanroom.greedy_parity import greedy_divergences, greedy_first_differences
from cleanroom.spec import Spec, build

#: prompt widths of the static engine are rounded up to a multiple of this, so batches share compiled shapes
WIDTH_BUCKET = 128
#: seconds without any result after which the paged engine gives up instead of waiting forever
PAGED_STALL_S = 300


@dataclass(frozen=True)
class GenerationResult:
    """Texts (new tokens only, cut at EOS/stop) in prompt order, with the engine that made them."""

    texts: list[str]
    token_counts: list[int]
    generated_counts: list[int]
    token_ids: list[list[int]]  # the kept tokens of each text
    engine: str
    engine_reason: str


class _Settings(Spec):
    """One call's sampling settings, validated like every spec (one ConfigError line naming the bad value)."""

    label: ClassVar[str] = "generate"

    max_new_tokens: Annotated[int, Field(ge=1)]
    temperature: Annotated[float, Field(ge=0)]
    top_p: Annotated[float, Field(gt=0, le=1)]
    stop: tuple[str, ...]
    batch_size: Annotated[int, Field(ge=1)]


def _whole(value: Any) -> Any:
    """An integral number (``numpy.int64`` included) as ``int``; anything else as given, for the spec to refuse."""
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def record_seed(seed: int, key: Any) -> int:
    """The sampling seed of one record: ``sha256(f"{seed}:{key}")`` folded to 63 bits.

    Fixed by the stage seed and the record's key alone, so it is the same whichever batch, position or
    attempt generates the record.
    """
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") >> 1


def generate(
    model: Any,
    tokenizer: Any,
    prompts: str | Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seeds: int | Sequence[int] = 0,
    stop: Sequence[str] | None = None,
    batch_size: int = 8,
    engine: str = "auto",
) -> GenerationResult:
    """Guarded generation of every prompt (see the module docstring); results in prompt order.

    ``seeds``: one per prompt, or an int ``s`` meaning ``s + i`` for prompt *i* (stages pass
    :func:`record_seed` of each record's key). Ignored when ``temperature == 0`` (greedy).
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    empty = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p]
    if empty or not prompts:
        raise InputError(
            f"generate: prompt {empty[0] if empty else '(none)'} is empty or not a string; every prompt needs at "
            "least one token to condition on — drop it or give it text"
        )
    settings = build(_Settings, {"max_new_tokens": _whole(max_new_tokens), "temperature": float(temperature),
                                 "top_p": float(top_p), "stop": tuple(s for s in stop or () if s),
                                 "batch_size": _whole(batch_size)})
    seed_list = [int(seeds) + i for i in range(len(prompts))] if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seed_list) != len(prompts):
        raise ConfigError(f"generate: {len(seed_list)} seeds for {len(prompts)} prompts; pass one per prompt")
    name, reason = choose_engine(engine, model, sampling=temperature > 0)
    guard.recheck(model, tokenizer)
    encoded = [guard.encode(tokenizer, p) for p in prompts]
    guard.scan_ids(encoded, guard.forbidden_ids(tokenizer), where="generation prompts", tokenizer=tokenizer)
    width = -(-max(len(e) for e in encoded) // WIDTH_BUCKET) * WIDTH_BUCKET
    dense, why = dense_decoding(model, prompt_width=width, max_new_tokens=settings.max_new_tokens,
                                batch_size=settings.batch_size) if name == "static" else (False, "")  # batches are padded to it
    reason += f"; {why}" if why else ""
    if name == "paged":
        new_ids = _paged(model, tokenizer, encoded, settings)
    else:
        with dequantized(model, enabled=dense):
            new_ids = _batched(model, tokenizer, encoded, seed_list, settings, static=name == "static")
    texts, kept, generated, ids_kept = [], [], [], []
    eos = guard.base_eos_id(tokenizer)
    for ids in new_ids:
        text, count, made = _finish(tokenizer, ids, eos, settings.stop)
        texts.append(text)
        kept.append(count)
        generated.append(made)
        ids_kept.append(ids[:count])
    return GenerationResult(texts=texts, token_counts=kept, generated_counts=generated, token_ids=ids_kept,
                            engine=name, engine_reason=reason)


# ---------------------------------------------------------------------------------------------- hf / static
def _sampler(uniforms: Any, temperature: float, top_p: float, width: int, forbidden: Any) -> Any:
    """A logits processor that *samples* (per-row uniforms, inverse CDF) and returns a one-hot score row,
    so ``generate`` runs greedy on top of it: the sampling is ours, seeded per record."""
    import torch  # heavy optional: torch
    from transformers import LogitsProcessor  # heavy optional: transformers

    class SeededSampler(LogitsProcessor):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            step = input_ids.shape[1] - width
            logits = scores.float() / temperature
            logits[:, forbidden] = float("-inf")
            probs = torch.softmax(logits, dim=-1)
            sorted_p, order = torch.sort(probs, dim=-1, descending=True, stable=True)
            if top_p < 1.0:  # nucleus: keep the smallest prefix whose mass reaches top_p (the first token always)
                sorted_p = sorted_p * ((sorted_p.cumsum(-1) - sorted_p) < top_p)
            cdf = sorted_p.cumsum(-1)
            target = uniforms[:, step].to(cdf.device, cdf.dtype).unsqueeze(1) * cdf[:, -1:]
            pick = torch.searchsorted(cdf, target).clamp(max=cdf.shape[1] - 1)
            token = order.gather(1, pick)
            out = torch.full_like(scores, float("-inf"))
            return typing.cast(torch.FloatTensor, out.scatter_(1, token, 0.0))

    return SeededSampler()


def _batched(model: Any, tokenizer: Any, encoded: list[list[int]], seeds: list[int], s: _Settings, *,
             static: bool) -> list[list[int]]:
    """hf and static engines: left-padded, length-sorted batches through ``model.generate``."""
    import torch  # heavy optional: torch
    from transformers import StoppingCriteriaList, StopStringCriteria  # heavy optional: transformers

    eos = guard.base_eos_id(tokenizer)
    forbidden = sorted(guard.forbidden_ids(tokenizer))
    suppressed = _suppressed_ids(tokenizer)
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: (-len(encoded[i]), i))
    stopping = StoppingCriteriaList([StopStringCriteria(tokenizer, list(s.stop))]) if s.stop else None
    out_ids: list[list[int]] = [[] for _ in encoded]
    for b, start in enumerate(range(0, len(order), s.batch_size)):
        idx = order[start:start + s.batch_size]
        width = max(len(encoded[i]) for i in idx)
        rows = list(idx)
        if static:  # fixed shapes: one compiled graph for every batch of the stage
            width = -(-width // WIDTH_BUCKET) * WIDTH_BUCKET
            rows += [idx[-1]] * (s.batch_size - len(idx))  # filler rows, discarded
        ids = torch.full((len(rows), width), eos, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, i in enumerate(rows):
            n = len(encoded[i])
            ids[row, width - n:] = torch.tensor(encoded[i])
            mask[row, width - n:] = 1
        guard.scan_ids(ids, forbidden, mask=mask, where=f"generation batch {b}", tokenizer=tokenizer)
        kwargs: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None,
                                  "suppress_tokens": suppressed or None}
        if s.temperature > 0:
            uniforms = torch.stack([torch.rand(s.max_new_tokens, generator=torch.Generator().manual_seed(seeds[i]),
                                               dtype=torch.float64) for i in rows]).to(device)
            kwargs["logits_processor"] = [_sampler(uniforms, s.temperature, s.top_p, width, suppressed)]
        if stopping is not None:
            kwargs["stopping_criteria"] = stopping
        if static:
            kwargs["cache_implementation"] = "static"
        with torch.no_grad(), _compiled_decode(model, enabled=static):
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=s.max_new_tokens, eos_token_id=eos, pad_token_id=eos, **kwargs)
        new = out[:len(idx), width:].tolist()
        guard.scan_ids([_until_eos(r, eos) for r in new], forbidden, where=f"generation output {b}",
                       tokenizer=tokenizer)
        for row, i in enumerate(idx):
            out_ids[i] = new[row]
    return out_ids


@contextlib.contextmanager
def _compiled_decode(model: Any, *, enabled: bool) -> Iterator[None]:
    """Let transformers compile the decode step of a bitsandbytes model on CUDA, as it does for bf16.

    transformers' auto-compile asks the quantizer, and bitsandbytes' quantizer answers "not compileable" for
    every version; bitsandbytes >= 0.45 runs under ``torch.compile`` (its ops are registered custom ops), so
    for the static engine the criterion is widened to "static cache on CUDA" for the duration of the call.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not enabled or getattr(inner, "hf_quantizer", None) is None or inner.device.type != "cuda":
        yield
        return

    def static_cache_on_cuda(model_kwargs: dict[str, Any], generation_config: Any) -> bool:
        cache = model_kwargs.get("past_key_values")
        return bool(cache is not None and getattr(cache, "is_compileable", False) and not generation_config.disable_compile)

    inner._valid_auto_compile_criteria = static_cache_on_cuda
    try:
        yield
    finally:
        del inner._valid_auto_compile_criteria


# ---------------------------------------------------------------------------------------------------- paged
def _paged_limits(model: Any, encoded: list[list[int]], s: _Settings) -> dict[str, Any]:
    """A KV cache sized for ``batch_size`` requests in flight, and no silently dropped logits processor.

    Left alone, transformers sizes the paged cache at 80-90% of the free memory (on the CPU: of the
    machine's RAM; two test workers doing so at once ran the machine out of memory), and drops a logits
    processor it does not support instead of refusing (``drop_unsupported_processors``): both are set here
    where the installed transformers has ``ContinuousBatchingConfig`` (the output scan catches a dropped
    suppression either way).
    """

    import transformers  # heavy optional: transformers

    config_cls = getattr(transformers, "ContinuousBatchingConfig", None)
    params = inspect.signature(model.continuous_batching_context_manager).parameters
    if config_cls is None or "continuous_batching_config" not in params:
        return {}
    page = 256
    per_request = -(-(max(len(e) for e in encoded) + s.max_new_tokens) // page)
    return {"continuous_batching_config": config_cls(
        page_size=page, num_blocks=(per_request + 1) * s.batch_size, max_requests_per_batch=s.batch_size,
        drop_unsupported_processors=False)}


def _paged(model: Any, tokenizer: Any, encoded: list[list[int]], s: _Settings) -> list[list[int]]:
    """Continuous batching through transformers' manager; a request whose text completes a stop string is
    cancelled at once (its slot freed), so its tokens end at most a step or two past the stop."""
    import torch  # heavy optional: torch
    from transformers import GenerationConfig  # heavy optional: transformers

    eos = guard.base_eos_id(tokenizer)
    forbidden = sorted(guard.forbidden_ids(tokenizer))
    for b, start in enumerate(range(0, len(encoded), s.batch_size)):
        guard.scan_ids(encoded[start:start + s.batch_size], forbidden, where=f"generation batch {b}",
                       tokenizer=tokenizer)
    suppressed = _suppressed_ids(tokenizer)
    config = GenerationConfig(max_new_tokens=s.max_new_tokens, do_sample=False, eos_token_id=eos, pad_token_id=eos,
                              suppress_tokens=suppressed or None)
    tail = max((len(guard.encode(tokenizer, x, add_bos=False)) for x in s.stop), default=0) + 2
    done: dict[str, list[int]] = {}
    with torch.no_grad(), model.continuous_batching_context_manager(generation_config=config, block=True, timeout=5,
                                                                      **_paged_limits(model, encoded, s)) as manager:
        request_ids = manager.add_requests(inputs=encoded, max_new_tokens=s.max_new_tokens, streaming=bool(s.stop))
        last_progress = time.monotonic()
        while len(done) < len(request_ids):
            result = manager.get_result(timeout=1)
            if result is None:
                # a request the manager dropped (it only logs a warning) would otherwise be waited for forever
                stalled = time.monotonic() - last_progress > PAGED_STALL_S
                if stalled or not manager.is_running():
                    why = f"made no progress for {PAGED_STALL_S} s" if stalled else "stopped"
                    raise CleanroomError(
                        f"paged generation {why} "
                        f"with {len(request_ids) - len(done)} of {len(request_ids)} requests unfinished; rerun "
                        "with generation.engine=hf or static")
                continue
            last_progress = time.monotonic()
            if result.request_id in done:
                continue  # a cancelled request's last stream update
            if getattr(result, "error", None):
                raise CleanroomError(f"paged generation: request {result.request_id} failed: {result.error}")
            tokens = list(result.generated_tokens)
            hit = bool(s.stop) and any(x in _decode(tokenizer, tokens[-tail:]) for x in s.stop)
            if result.is_finished() or hit:
                done[result.request_id] = tokens
                if not result.is_finished():
                    manager.cancel_request(result.request_id)
    new = [done[r] for r in request_ids]
    for b, start in enumerate(range(0, len(new), s.batch_size)):
        guard.scan_ids([_until_eos(r, eos) for r in new[start:start + s.batch_size]], forbidden,
                       where=f"generation output {b}", tokenizer=tokenizer)
    return new


# -------------------------------------------------------------------------------------------------- results
def _suppressed_ids(tokenizer: Any) -> list[int]:
    """The IDs masked out of every step's logits: the guard's forbidden IDs (the outputs are scanned for them
    again after generation, so an engine that drops the mask is caught, not trusted)."""
    return sorted(guard.forbidden_ids(tokenizer))


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False))


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[:ids.index(eos)] if eos in ids else ids


def _finish(tokenizer: Any, new: list[int], eos: int, stop: tuple[str, ...]) -> tuple[str, int, int]:
    """``(text, kept tokens, generated tokens)`` of one sequence: cut at the base EOS, then at the first stop."""
    body = _until_eos(new, eos)
    text = _decode(tokenizer, body)
    cuts = [text.find(x) for x in stop if x in text]
    if not cuts:  # ended by EOS (generated it too), or ran to max_new_tokens
        return text, len(body), len(body) + (1 if len(body) < len(new) else 0)
    cut = min(cuts)
    # the smallest prefix of tokens whose text reaches the cut (binary search over decoded prefixes)
    lo, hi = 0, len(body)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_decode(tokenizer, body[:mid])) >= cut:
            hi = mid
        else:
            lo = mid + 1
    return text[:cut], lo, len(body)


__all__ = ["ENGINES", "WIDTH_BUCKET", "GenerationResult", "choose_engine", "dense_decoding", "generate",
           "greedy_divergences",
           "greedy_first_differences", "release_dense",
           "record_seed"]
