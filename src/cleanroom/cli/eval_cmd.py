"""``cleanroom eval score|run|make-set|compare``: IFEval-compatible instruction-following evaluation.

* ``score``: re-score saved responses (no model): join on key, write verdicts with provenance blocks.
* ``run``: generate with the clean loader (few-shot, completion style), then score, inside a run
  directory (``<out>/<run_id>/eval/``) that ``cleanroom verify`` checks; the same arguments again resume
  a killed run (:mod:`cleanroom.pipeline.eval_run`).
* ``make-set``: write the embedded eval set and the disjoint SFT instruction pool.
* ``compare``: paired comparison of verdict files (``cleanroom.cli.eval_compare``).
Nothing heavy is imported at module import.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cleanroom.cli import eval_compare
from cleanroom.cli._types import name, non_negative_int, positive_int, reason
from cleanroom.config import GenerationSpec
from cleanroom.errors import InstructModelError
from cleanroom.ifeval import (
    format_summary,
)
from cleanroom.ifeval.evalset import write_eval_set
from cleanroom.ifeval.rescore import score_saved_responses
from cleanroom.pipeline.eval_run import eval_model


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="instruction-following evaluation (IFEval-compatible)")
    actions = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    s = actions.add_parser("score", help="score saved responses against a prompt file (no model)")
    s.add_argument("--prompts", type=Path, required=True, help="IFEval prompts JSONL {key, prompt, instruction_id_list, kwargs}")
    s.add_argument("--prompts-sha256", default=None, help="refuse the prompt file unless its sha256 matches")
    s.add_argument("--responses", type=Path, required=True, help="responses JSONL {key, response}")
    s.add_argument("--out", type=Path, required=True, help="verdicts JSONL to write")
    s.add_argument("--summary", type=Path, default=None, help="also write the summary JSON here")
    s.add_argument("--label", default="eval", type=name, help="record-id prefix of the verdicts (default: eval)")
    s.set_defaults(handler=run_score)

    r = actions.add_parser("run", help="generate through the guarded generation engine, then score")
    r.add_argument("--model", type=Path, required=True, help="base model directory")
    r.add_argument("--adapter", type=Path, default=None, help="PEFT adapter directory to apply")
    r.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    r.add_argument("--prompts", type=Path, default=None, help="prompt file (default: the embedded eval set)")
    r.add_argument("--prompts-sha256", default=None, help="refuse the prompt file unless its sha256 matches")
    r.add_argument("--limit", type=int, default=None, help="score only the first N prompts (smoke tests)")
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    r.add_argument("--seed", type=non_negative_int, default=0)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--engine", default="auto", choices=("auto", "hf", "static", "paged"),
                   help="generation engine (default auto: the fastest one that supports the settings here)")
    r.add_argument("--run-id", default="eval", type=name, help="run directory name under --out (default: eval); the same "
                   "arguments again resume a killed run there")
    r.add_argument("--label", default="model", type=name, help="record-id prefix of verdicts: eval/<label>:<key>")
    r.add_argument("--no-probe", action="store_true", help="skip the loader's base-or-instruct probe")
    r.add_argument("--allow-instruct", metavar="REASON", default=None, type=reason,
                   help="evaluate an instruct model anyway, recording why in the run's provenance")
    r.add_argument("--out", type=Path, required=True, help="root directory of the run")
    r.set_defaults(handler=run_generate)

    m = actions.add_parser("make-set", help="write the embedded eval set and the SFT instruction pool")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--seed", type=non_negative_int, default=0, help="generator seed, an integer >= 0 (default 0)")
    m.add_argument("--n-eval", type=positive_int, default=300, help="eval prompts to write (default 300)")
    m.add_argument("--n-pool", type=positive_int, default=600, help="SFT pool prompts to write (default 600)")
    m.set_defaults(handler=run_make_set)

    c = actions.add_parser("compare", help="paired comparison of verdict files (statistics)")

    eval_compare.add_arguments(c)


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"{summary['n_prompts']} prompts, {summary['n_instructions']} instructions (95% intervals; instruction level clustered by prompt)")
    print(format_summary(summary))


def run_score(args: argparse.Namespace) -> int:

    _print_summary(score_saved_responses(args.prompts, args.responses, args.out, prompts_sha256=args.prompts_sha256,
                                         summary_path=args.summary, label=args.label))
    return 0


def run_generate(args: argparse.Namespace) -> int:

    gen = GenerationSpec(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed,
                         batch_size=args.batch_size, engine=args.engine)
    try:
        path, summary = eval_model(args.model, out=args.out, gen=gen, run_id=args.run_id, label=args.label,
                                   adapter=args.adapter, gguf_file=args.gguf_file, prompts=args.prompts,
                                   prompts_sha256=args.prompts_sha256, limit=args.limit, probe=not args.no_probe,
                                   allow_instruct_reason=args.allow_instruct)
    except InstructModelError as exc:  # the loader's fix names its keyword; this command's is an option
        raise exc.with_fix("use the base checkpoint, or pass --allow-instruct REASON to evaluate it anyway (the "
                           "reason is recorded in the run's provenance)") from exc
    print(f"run: {path}")
    _print_summary(summary)
    return 0


def run_make_set(args: argparse.Namespace) -> int:

    info = write_eval_set(args.out, seed=args.seed, n_eval=args.n_eval, n_pool=args.n_pool)
    print(f"eval set: {info['n_eval']} prompts, {len(info['types_covered'])} instruction types, "
          f"sha256 {info['eval_prompts_sha256']}")
    print(f"sft pool: {info['n_pool']} prompts, sha256 {info['sft_pool_sha256']} (no shared prompt or 13-gram)")
    return 0
