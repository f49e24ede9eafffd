"""Score saved responses against a prompt file, no model needed (``cleanroom eval score``).

Responses are joined to prompts on ``key``; each verdict carries the conditions it was produced under (the
prompt's digest and the scorer's version, plus what the responses file recorded), so ``eval compare`` can
refuse files that differ in anything but the model, and a provenance block parented on the responses file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanroom.artifacts import atomic_write_bytes, pretty_json, write_records
from cleanroom.fs import check_outputs
from cleanroom.ifeval.io import file_sha256, read_prompts, read_response_conditions, read_responses
from cleanroom.ifeval.scoring import score_responses, scoring_conditions, summarize
from cleanroom.provenance import capture_provenance


def score_saved_responses(prompts: Path, responses: Path, out: Path, *, prompts_sha256: str | None = None,
                          summary_path: Path | None = None, label: str = "eval") -> dict[str, Any]:
    """Write the verdicts of *responses* to *out* (record ids ``eval/<label>:<key>``) and return the summary,
    also written, with the inputs' digests and the provenance, to *summary_path* when given."""

    check_outputs({"--out": out, "--summary": summary_path}, {"--prompts": prompts, "--responses": responses})
    records = read_prompts(prompts, sha256=prompts_sha256)
    verdicts = score_responses(records, read_responses(responses))
    inputs = {"prompts_sha256": file_sha256(prompts), "responses_sha256": file_sha256(responses)}
    produced = read_response_conditions(responses)
    by_key = {p.key: p for p in records}
    for v in verdicts:  # what each verdict was produced under, for `eval compare`
        v["conditions"] = scoring_conditions(by_key[v["key"]]) | produced[v["key"]]
    rec = capture_provenance("eval_score", extra={"ifeval": inputs})
    parent = {"artifact": str(responses.resolve()), "sha256": inputs["responses_sha256"], "record_id": None}
    write_records(
        out, verdicts, producer={"stage": "eval_score", "provenance_sha256": rec.sha256},
        parents_of=lambda v: [parent], record_id_of=lambda v: f"eval/{label}:{v['key']}",
    )
    summary = summarize(verdicts)
    if summary_path is not None:
        atomic_write_bytes(summary_path, pretty_json({**summary, **inputs, "provenance": rec.to_dict()}))
    return summary
