"""Regenerate (``--write``) or check (default) the README's example outputs from a fresh tiny run.

    python benchmarks/readme_examples.py [--run runs/tiny-<digest>] [--write]

Each example sits in the README between ``<!-- example:NAME -->`` and ``<!-- /example -->``; this script
runs the command the example shows (the tiny Stage 1 run itself when ``--run`` is not given, about 3
minutes on 2 cores) and renders the block from what the command printed. Without ``--write`` it
prints a diff of every block that no longer matches and exits 1, so the README cannot drift from
the code; with ``--write`` it rewrites the blocks. Paths under the fixture cache are shown as
``~/.cache/cleanroom/...``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
TRACE_ID = "eval/dpo_verdict:100000"
SCAN_FILE = "docs/examples/sft.jsonl"


def cleanroom(*args: str, cwd: Path, expect: int = 0) -> tuple[int, str]:
    """Run ``cleanroom ARGS`` in *cwd*; exit (naming the command) unless it exits *expect*."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "cleanroom.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=env)
    if proc.returncode != expect:
        sys.exit(f"readme_examples: `cleanroom {' '.join(args)}` exited {proc.returncode}, expected {expect}:\n"
                 f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.returncode, proc.stdout + proc.stderr


def tidy(text: str) -> str:
    """Fixture-cache paths as ~/.cache/cleanroom/...; no trailing spaces."""
    from cleanroom.fixtures import cache_root

    text = text.replace(str(cache_root()), "~/.cache/cleanroom")
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def render(run: Path | None) -> dict[str, str]:
    """Every example block, from a fresh tiny run (or *run*)."""
    from cleanroom.fixtures import qwen_base_tokenizer

    work = Path(tempfile.mkdtemp(prefix="readme-examples-"))
    if run is None:
        code, out = cleanroom("run", "stage1", "--profile", "tiny", "--out", "runs", "--no-progress", cwd=work)
        if code != 0:
            sys.exit(f"readme_examples: the tiny run exited {code}:\n{out[-3000:]}")
        (run,) = [p for p in (work / "runs").iterdir() if p.is_dir()]
    else:
        run = run.resolve()
    # the verdict line as the pipeline printed it, from the run log (the last attempt's)
    stage2 = [line.split(" ", 1)[1] for line in (run / "run.log").read_text().splitlines() if " Stage 2:" in line]
    rel = f"runs/{run.name}"
    cwd = work
    if not (work / "runs").exists():  # --run elsewhere: show it as runs/<id>, as the README's commands do
        (work / "runs").symlink_to(run.parent)
    blocks = {}
    if stage2:
        blocks["stage2"] = f"```console\n$ cleanroom run stage1 --profile tiny\n...\n{stage2[-1]}\n```\n"
    _, verify = cleanroom("verify", rel, cwd=cwd)
    _, trace = cleanroom("trace", rel, TRACE_ID, cwd=cwd)
    blocks["verify"] = (f"```console\n$ cleanroom verify {rel}\n{tidy(verify)}\n$ cleanroom trace {rel} {TRACE_ID}\n"
                        f"{tidy(trace)}\n$ cleanroom env --json        # library versions, hardware, git state: "
                        "paste into a paper or an issue\n```\n")
    files = [f"{rel}/eval/{m}_verdicts.jsonl" for m in ("base", "sft", "dpo")]
    _, table = cleanroom("eval", "compare", *files, cwd=cwd)
    blocks["compare"] = f"```console\n$ cleanroom eval compare {rel}/eval/{{base,sft,dpo}}_verdicts.jsonl\n```\n\n{tidy(table)}\n"
    tok = str(qwen_base_tokenizer())
    _, scan = cleanroom("scan-data", SCAN_FILE, "--tokenizer", tok, cwd=ROOT, expect=1)
    blocks["scan-data"] = (f"```console\n$ cleanroom scan-data {SCAN_FILE} --tokenizer "
                           f"~/.cache/cleanroom/fixtures/{Path(tok).name}      # exit 1, one line per finding\n"
                           f"{tidy(scan)}\n```\n")
    return blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="an existing finished tiny run (default: make a fresh one)")
    ap.add_argument("--write", action="store_true", help="rewrite the README's example blocks")
    args = ap.parse_args()
    text = README.read_text()
    blocks = render(args.run)
    stale = []

    def replace(m: re.Match[str]) -> str:
        new = blocks.get(m.group("name"))
        if new is None:
            return m.group(0)
        if new != m.group("body"):
            stale.append((m.group("name"), m.group("body"), new))
        return m.group(1) + new + m.group(4)

    updated = BLOCK.sub(replace, text)
    missing = sorted(set(blocks) - {m.group("name") for m in BLOCK.finditer(text)})
    if missing:
        sys.exit(f"readme_examples: README.md has no <!-- example:NAME --> block for {', '.join(missing)}")
    if args.write:
        README.write_text(updated)
        print(f"README.md: {len(stale)} example block(s) rewritten")
        return
    for name, old, new in stale:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"README {name}",
                                                   f"fresh {name}"))
    print("README examples match a fresh run" if not stale else f"{len(stale)} README example block(s) are stale; "
          "rerun with --write")
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
