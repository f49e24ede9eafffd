"""The environment report: library versions, hardware and git state, without importing torch.

This is the reproducibility log a paper or bug report needs, and the part of every provenance record
that describes *where* a stage ran. Package versions come from ``importlib.metadata`` (the installed
distribution's metadata, no import). CUDA facts come from
``nvidia-smi`` when it is on ``PATH`` (GPUs, driver, the driver's CUDA version), and the CUDA build
from torch only when torch is *already* imported by the caller — asking torch would cost seconds and
pull CUDA initialisation into a process that did not want it.

Environment variables are never recorded wholesale: only a short allow-list of reproducibility knobs
(seeds, thread counts, offline flags), and even those pass through :func:`cleanroom.redaction.redact`.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from cleanroom.redaction import redact

# Distributions whose versions change numbers; "unsloth" only appears when installed.
PACKAGES: tuple[str, ...] = (
    "cleanroom",
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "numpy",
    "scipy",
    "statsmodels",
    "unsloth",
)

# Environment variables that change results and carry no secret (recorded by value).
REPRODUCIBILITY_ENV: tuple[str, ...] = (
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "CUDA_VISIBLE_DEVICES",
    "CLEANROOM_SEED",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """``{distribution: version}`` from installed metadata; ``None`` for a missing one (unsloth omitted)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name != "unsloth":
                out[name] = None
    return out


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``{commit, dirty}`` of the checkout holding *cwd* (default: the cleanroom source tree).

    ``dirty`` ignores untracked files: only modified tracked files change the code that ran.
    Outside git (or when git cannot run) the commit is ``"unknown"`` and ``dirty`` is None: not known, never
    reported as clean.
    """
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    commit = _stdout(["git", "rev-parse", "HEAD"], cwd=where, timeout=10)
    status = _stdout(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, timeout=10)
    if commit is None or status is None:
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


def dirty_label(dirty: bool | None) -> str:
    """The suffix a report line puts after the commit: `` (dirty)``, nothing when clean, or that it is unknown."""
    if dirty is None:
        return " (dirty: unknown, git could not run)"
    return " (dirty)" if dirty else ""


def _stdout(args: list[str], *, timeout: float, cwd: Path | None = None) -> str | None:
    """The standard output of a command that ran and exited 0; None when it could not run, failed or hung:
    every fact read from a tool is optional, so a missing git or driver never fails a report."""
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _nvidia_smi() -> list[dict[str, str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    out = _stdout([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], timeout=20)
    if out is None:
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


@functools.cache
def _nvidia_smi_cuda() -> str | None:
    """The "CUDA Version" in ``nvidia-smi``'s header (the newest CUDA the driver supports), or None.

    Asked once per process (one ~0.1 s call); None when nvidia-smi is absent, fails or prints no such line.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    out = _stdout([exe], timeout=20)
    match = re.search(r"CUDA Version:\s*([0-9][0-9.]*)", out) if out is not None else None
    return match.group(1) if match else None


def hardware_info() -> dict[str, Any]:
    """CPU model and count, memory, GPUs (``nvidia-smi``) and CUDA.

    ``cuda`` is torch's CUDA build when torch is already imported and has one (``cuda_source:
    "torch"``); otherwise the driver's CUDA version from ``nvidia-smi`` (``cuda_source: "nvidia-smi"``);
    None on a machine with neither.
    """
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "gpus": _nvidia_smi(),
        "cuda": None,
        "cuda_source": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda"] = getattr(torch.version, "cuda", None)
        info["cuda_source"] = "torch" if info["cuda"] else None
        info["torch_cuda_available"] = bool(torch.cuda.is_available())
    if info["cuda"] is None:
        info["cuda"] = _nvidia_smi_cuda()
        info["cuda_source"] = "nvidia-smi" if info["cuda"] else None
    return info


def environment_report() -> dict[str, Any]:
    """The full report behind ``cleanroom env``: versions, platform, hardware, git, reproducibility env."""
    report = {
        "packages": package_versions(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "hardware": hardware_info(),
        "git": git_state(),
        "env": {k: os.environ[k] for k in REPRODUCIBILITY_ENV if k in os.environ},
    }
    return redact(report)


def format_report(report: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`environment_report`, one fact per line (paste into an issue)."""
    lines = [f"platform      {report['platform']}"]
    for name, version in report["packages"].items():
        lines.append(f"{name:13s} {version if version is not None else '(not installed)'}")
    hw = report["hardware"]
    lines.append(f"cpu           {hw['cpu']} x{hw['cpu_count']}")
    if hw.get("memory_bytes"):
        lines.append(f"memory        {hw['memory_bytes'] / 2**30:.1f} GiB")
    for gpu in hw["gpus"] or [{"name": "(none)", "driver": "-", "memory": "-"}]:
        lines.append(f"gpu           {gpu['name']} driver {gpu['driver']} {gpu['memory']}")
    if hw.get("cuda"):
        source = " (driver, from nvidia-smi)" if hw.get("cuda_source") == "nvidia-smi" else ""
        lines.append(f"cuda          {hw['cuda']}{source}")
    git = report["git"]
    lines.append(f"git           {git['commit']}{dirty_label(git['dirty'])}")
    for key, value in report["env"].items():
        lines.append(f"env           {key}={value}")
    return "\n".join(lines)
