"""``cleanroom eval score|run|make-set|compare``: IFEval-compatible instruction-following evaluation.

* ``score``: re-score saved responses (no model): join on key, write verdicts with provenance blocks.
* ``run``: generate with the clean loader (few-shot, completion style), then score, inside a run
  directory (``<out>/<run_id>/eval/``) that ``cleanroom verify`` checks.
* ``make-set``: write the embedded eval set and the disjoint SFT instruction pool.
* ``compare``: paired comparison of verdict files (``cleanroom.cli.eval_compare``).
Nothing heavy is imported at module import.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from cleanroom.artifacts import RunDir, atomic_write_bytes, pretty_json, write_records
from cleanroom.cli import eval_compare
from cleanroom.errors import InputError
from cleanroom.generation import choose_engine, generate, record_seed
from cleanroom.ifeval import (
    file_sha256,
    format_summary,
    make_eval_set,
    read_prompts,
    read_responses,
    score_record,
    score_responses,
    summarize,
)
from cleanroom.ifeval.io import read_response_conditions
from cleanroom.ifeval.prompting import FEW_SHOT_DIGEST, STOP, clean_completion, few_shot_prompt
from cleanroom.ifeval.scoring import scoring_conditions
from cleanroom.loader import CleanModelLoader
from cleanroom.provenance import capture_provenance


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="instruction-following evaluation (IFEval-compatible)")
    actions = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    s = actions.add_parser("score", help="score saved responses against a prompt file (no model)")
    s.add_argument("--prompts", type=Path, required=True, help="IFEval prompts JSONL {key, prompt, instruction_id_list, kwargs}")
    s.add_argument("--prompts-sha256", default=None, help="refuse the prompt file unless its sha256 matches")
    s.add_argument("--responses", type=Path, required=True, help="responses JSONL {key, response}")
    s.add_argument("--out", type=Path, required=True, help="verdicts JSONL to write")
    s.add_argument("--summary", type=Path, default=None, help="also write the summary JSON here")
    s.add_argument("--label", default="eval", help="record-id prefix of the verdicts (default: eval)")
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
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--engine", default="auto", choices=("auto", "hf", "static", "paged"),
                   help="generation engine (default auto: the fastest one that supports the settings here)")
    r.add_argument("--run-id", default="eval", help="run directory name under --out (default: eval)")
    r.add_argument("--label", default="model", help="record-id prefix of verdicts: eval/<label>:<key>")
    r.add_argument("--no-probe", action="store_true", help="skip the loader's base-or-instruct probe")
    r.add_argument("--out", type=Path, required=True, help="root directory of the run")
    r.set_defaults(handler=run_generate)

    m = actions.add_parser("make-set", help="write the embedded eval set and the SFT instruction pool")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--n-eval", type=int, default=300)
    m.add_argument("--n-pool", type=int, default=600)
    m.set_defaults(handler=run_make_set)

    c = actions.add_parser("compare", help="paired comparison of verdict files (statistics)")

    eval_compare.add_arguments(c)


def _print_summary(summary: dict[str, Any]) -> None:
    print(f"{summary['n_prompts']} prompts, {summary['n_instructions']} instructions (95% intervals; instruction level clustered by prompt)")
    print(format_summary(summary))


def run_score(args: argparse.Namespace) -> int:
    prompts = read_prompts(args.prompts, sha256=args.prompts_sha256)
    responses = read_responses(args.responses)
    verdicts = score_responses(prompts, responses)
    inputs = {"prompts_sha256": file_sha256(args.prompts), "responses_sha256": file_sha256(args.responses)}
    produced = read_response_conditions(args.responses)
    by_key = {p.key: p for p in prompts}
    for v in verdicts:  # what each verdict was produced under, for `eval compare`
        v["conditions"] = scoring_conditions(by_key[v["key"]]) | produced[v["key"]]
    rec = capture_provenance("eval_score", extra={"ifeval": inputs})
    parent = {"artifact": str(args.responses.resolve()), "sha256": inputs["responses_sha256"], "record_id": None}
    write_records(
        args.out, verdicts, producer={"stage": "eval_score", "provenance_sha256": rec.sha256},
        parents_of=lambda v: [parent], record_id_of=lambda v: f"eval/{args.label}:{v['key']}",
    )
    summary = summarize(verdicts)
    if args.summary is not None:
        atomic_write_bytes(args.summary, pretty_json({**summary, **inputs, "provenance": rec.to_dict()}))
    _print_summary(summary)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        prompts_path = args.prompts
        if prompts_path is None:
            make_eval_set(tmp)
            prompts_path = Path(tmp) / "eval_prompts.jsonl"
        records = read_prompts(prompts_path, sha256=args.prompts_sha256)
        prompts_sha = file_sha256(prompts_path)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit must be >= 1, got {args.limit}")
        records = records[: args.limit]
    loader = CleanModelLoader(args.model, gguf_file=args.gguf_file, probe=not args.no_probe)
    model, tokenizer, loader_prov = loader.load()
    if args.adapter is not None:
        from peft import PeftModel  # heavy optional: peft

        model = PeftModel.from_pretrained(model, str(args.adapter))
    engine, reason = choose_engine(args.engine, model, sampling=args.temperature > 0)
    print(f"generation engine {engine} ({reason})")
    generation = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed,
                  "stop": [STOP], "batch_size": args.batch_size, "few_shot_digest": FEW_SHOT_DIGEST,
                  "engine": args.engine, "engine_resolved": engine, "engine_reason": reason}
    config = {"command": "eval run", "model": str(args.model), "adapter": str(args.adapter) if args.adapter else None,
              "prompts_sha256": prompts_sha, "n_prompts": len(records), "generation": generation}
    run = RunDir.create(args.out, args.run_id, config)
    rec = capture_provenance("eval", run_id=args.run_id, config=config, model_path=args.model, loader=loader_prov,
                             generation=generation, seeds={"generation": args.seed},
                             extra={"adapter": str(args.adapter) if args.adapter else None})
    res = generate(model, tokenizer, [few_shot_prompt(r.prompt) for r in records],
                   max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   seeds=[record_seed(args.seed, r.key) for r in records], stop=[STOP], batch_size=args.batch_size,
                   engine=engine)
    verdicts = []
    with run.stage("eval", provenance=rec, inputs=[]) as st:
        gens, out = st.jsonl("responses.jsonl"), st.jsonl("verdicts.jsonl")
        for r, text, n_tok in zip(records, res.texts, res.token_counts, strict=True):
            response = clean_completion(text)
            gid = gens.write({"key": r.key, "response": response, "tokens": n_tok},
                             record_id=f"eval/{args.label}/response:{r.key}")
            v = score_record(r, response)
            v["conditions"] = scoring_conditions(r) | {
                "model": {"path": str(args.model), "adapter": str(args.adapter) if args.adapter else None},
                "generation": generation, "rendering": {"few_shot_digest": FEW_SHOT_DIGEST}}
            out.write(v, parents=[st.ref("responses.jsonl", gid)], record_id=f"eval/{args.label}:{r.key}")
            verdicts.append(v)
        summary = summarize(verdicts)
        (st.dir / "summary.json").write_bytes(pretty_json(summary))
        st.add_file(st.dir / "summary.json")
    run.finalize()
    print(f"run: {run.path}")
    _print_summary(summary)
    return 0


def run_make_set(args: argparse.Namespace) -> int:
    info = make_eval_set(args.out, seed=args.seed, n_eval=args.n_eval, n_pool=args.n_pool)
    atomic_write_bytes(Path(args.out) / "eval_set.json", pretty_json(info))
    print(f"eval set: {info['n_eval']} prompts, {len(info['types_covered'])} instruction types, "
          f"sha256 {info['eval_prompts_sha256']}")
    print(f"sft pool: {info['n_pool']} prompts, sha256 {info['sft_pool_sha256']} (no shared prompt or 13-gram)")
    return 0
