"""Score saved responses against a prompt file, no model needed (``cleanroom eval score``).

Responses are joined to prompts on ``key``; each verdict carries the conditions it was produced under (the
prompt's digest and the scorer's version, plus what the responses file recorded), so ``eval compare`` can
refuse files that differ in anything but the model, and a provenance block parented on the responses file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanroom.artifacts import pretty_json, write_records
from cleanroom.fs import OutputGroup, check_outputs, refuse_replacing_foreign
from cleanroom.ifeval.io import (
    file_sha256,
    produced_by,
    read_prompts,
    read_response_conditions,
    read_responses,
)
from cleanroom.ifeval.scoring import score_responses, scoring_conditions, summarize
from cleanroom.provenance import capture_provenance


def _score_output(path: Path) -> bool:
    return produced_by(path, "eval_score")


def score_saved_responses(prompts: Path, responses: Path, out: Path, *, prompts_sha256: str | None = None,
                          summary_path: Path | None = None, label: str = "eval") -> dict[str, Any]:
    """Write the verdicts of *responses* to *out* (record ids ``eval/<label>:<key>``) and return the summary,
    also written, with the inputs' digests and the provenance, to *summary_path* when given.

    Both outputs are checked before anything is read (each absent or an earlier output of this
    command, under a writable directory) and replaced together: on any error neither has changed."""

    check_outputs({"--out": out, "--summary": summary_path}, {"--prompts": prompts, "--responses": responses})
    refuse_replacing_foreign("--out", out, _score_output, "a verdict file of `cleanroom eval score`")
    refuse_replacing_foreign("--summary", summary_path, _score_output, "a summary of `cleanroom eval score`")
    records = read_prompts(prompts, sha256=prompts_sha256)
    verdicts = score_responses(records, read_responses(responses))
    inputs = {"prompts_sha256": file_sha256(prompts), "responses_sha256": file_sha256(responses)}
    produced = read_response_conditions(responses)
    by_key = {p.key: p for p in records}
    for v in verdicts:  # what each verdict was produced under, for `eval compare`
        v["conditions"] = scoring_conditions(by_key[v["key"]]) | produced[v["key"]]
    rec = capture_provenance("eval_score", extra={"ifeval": inputs})
    parent = {"artifact": str(responses.resolve()), "sha256": inputs["responses_sha256"], "record_id": None}
    summary = summarize(verdicts)
    with OutputGroup() as group:  # --out and --summary are replaced together, or neither is
        write_records(
            out, verdicts, producer={"stage": "eval_score", "provenance_sha256": rec.sha256},
            parents_of=lambda v: [parent], record_id_of=lambda v: f"eval/{label}:{v['key']}", write=group.write,
        )
        if summary_path is not None:
            group.write(summary_path, pretty_json({**summary, **inputs, "provenance": rec.to_dict()}))
    return summary
