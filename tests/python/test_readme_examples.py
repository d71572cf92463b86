"""The examples of README.md and bindings/python/README.md run as written.

Every fenced code block of those two pages is a test case:

- ```python: runs on its own in a fresh interpreter that imports the culoss package under test.
  It is skipped only when it imports an optional framework (PyTorch, MONAI, ...) that is not
  installed.
- ```c: a complete program, compiled as C99 against include/culoss/culoss.h, linked with the
  library the package uses (``culoss.library_path()``), and run; it must exit with status 0.
- ```sh, ```bash, ```console: commands, not run; every repository path they name must exist.
- ```text: not code (signatures, trees, program output).

A block right after a line ``<!-- not-run: REASON -->`` is a deliberate fragment: it is
reported as skipped with that reason. Any other language is an error, so that no example is
left untested by accident.

The Markdown pages of the repository must also link only inside it: every relative link (and
its #anchor) resolves to a file of the repository, and no page names a file outside it.
"""

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from typing import List, NamedTuple, Optional

import pytest

import culoss

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE_PAGES = ["README.md", os.path.join("bindings", "python", "README.md")]
LINKED_PAGES = EXAMPLE_PAGES + [
    "CHANGELOG.md",
    os.path.join("benchmarks", "README.md"),
    os.path.join("benchmarks", "results", "NOTES.md"),
] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(REPO, "docs"))
           if f.endswith(".md"))

SHELL = {"sh", "bash", "console", "shell"}
NOT_CODE = {"text"}
KNOWN = {"python", "c"} | SHELL | NOT_CODE
# Frameworks an example may import that the package does not require: their absence skips it.
OPTIONAL = {"torch", "torchvision", "monai", "segmentation_models_pytorch", "kornia", "jax",
            "jaxlib", "cupy"}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->$")


class Block(NamedTuple):
    page: str       # path relative to the repository
    line: int       # 1-based line of the opening fence
    lang: str
    code: str
    not_run: Optional[str]  # the reason of a not-run marker

    @property
    def where(self) -> str:
        return "%s:%d" % (self.page, self.line)


def read(page: str) -> str:
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened by `fence` (the same character, at least as many)."""
    t = line.strip()
    return len(t) >= len(fence) and t == fence[0] * len(t)


def blocks_of(page: str) -> List[Block]:
    lines = read(page).split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not closes(lines[j], fence):
            j += 1
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NOT_RUN.match(lines[k].strip()) if k >= 0 else None
        out.append(Block(page, start + 1, lang, "\n".join(lines[start + 1:j]) + "\n",
                         marker.group(1) if marker else None))
        i = j + 1
    return out


ALL_BLOCKS = [b for page in EXAMPLE_PAGES for b in blocks_of(page)]


def by_lang(langs):
    chosen = [b for b in ALL_BLOCKS if b.lang in langs]
    return pytest.mark.parametrize("block", chosen, ids=[b.where for b in chosen])


def test_every_block_has_a_known_language():
    unknown = ["%s (%r)" % (b.where, b.lang) for b in ALL_BLOCKS if b.lang not in KNOWN]
    assert not unknown, ("code blocks without a tested language (use one of %s, or `text` for "
                         "what is not code): %s" % (sorted(KNOWN), unknown))


def test_the_pages_have_examples():
    langs = {b.lang for b in ALL_BLOCKS if b.not_run is None}
    assert {"python", "c", "sh"} <= langs, langs


def skip_if_not_run(block: Block) -> None:
    if block.not_run is not None:
        pytest.skip("%s is marked not-run: %s" % (block.where, block.not_run))


# ------------------------------------------------------------------------------------- Python

def imported_modules(code: str) -> set:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    tops = {n.split(".")[0] for n in names}
    if any(n == "culoss.torch" or n.startswith("culoss.torch.") for n in names):
        tops.add("torch")
    return tops


def package_env() -> dict:
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(culoss.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


@by_lang({"python"})
def test_python_example_runs(block, tmp_path):
    skip_if_not_run(block)
    for name in sorted(imported_modules(block.code) & OPTIONAL):
        if importlib.util.find_spec(name) is None:
            pytest.skip("%s imports %s, which is not installed" % (block.where, name))
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    r = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), env=package_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, ("the example at %s failed (exit status %d)\n--- stdout\n%s\n"
                               "--- stderr\n%s" % (block.where, r.returncode, tail(r.stdout),
                                                   tail(r.stderr)))


# ------------------------------------------------------------------------------------------ C

def c_compiler() -> Optional[str]:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return shutil.which(cc)
    return None


@by_lang({"c"})
def test_c_example_compiles_and_runs(block, tmp_path):
    skip_if_not_run(block)
    cc = c_compiler()
    if cc is None:
        pytest.skip("no C compiler (cc, gcc, clang or $CC)")
    library = os.path.realpath(culoss.library_path())
    # The library's SONAME is libculoss.so.0, which the package does not ship under that name:
    # link and run against a folder that has both names.
    libdir = tmp_path / "lib"
    libdir.mkdir()
    for name in ("libculoss.so", "libculoss.so.0"):
        os.symlink(library, str(libdir / name))
    source = tmp_path / "example.c"
    source.write_text(block.code, encoding="utf-8")
    exe = tmp_path / "example"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
           "-I", os.path.join(REPO, "include"), str(source), "-o", str(exe),
           "-L", str(libdir), "-lculoss", "-Wl,-rpath," + str(libdir)]
    dlpack = os.environ.get("CULOSS_DLPACK_INCLUDE")
    if dlpack:
        cmd[1:1] = ["-I", dlpack]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "dlpack/dlpack.h" in r.stderr and "No such file" in r.stderr:
        pytest.skip("dlpack/dlpack.h not found (apt-get install libdlpack-dev, or set "
                    "CULOSS_DLPACK_INCLUDE)")
    assert r.returncode == 0, "the example at %s does not compile:\n%s\n%s" % (
        block.where, " ".join(cmd), tail(r.stderr))
    run = subprocess.run([str(exe)], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, ("the example at %s exited with status %d\n--- stdout\n%s\n"
                                 "--- stderr\n%s" % (block.where, run.returncode,
                                                     tail(run.stdout), tail(run.stderr)))


# -------------------------------------------------------------------------------------- shell

TOP_LEVEL = {n for n in os.listdir(REPO) if not n.startswith("build") and n != ".git"}
OUTPUT_FLAGS = {"--out", "-o", "-w", "-d", "--prefix", "-B", "--test-dir", "--build"}


def named_paths(code: str) -> List[str]:
    """Repository paths a shell block names (build outputs and output arguments left out)."""
    paths = []
    for line in code.splitlines():
        words = line.replace("$(", " ").replace("(", " ").replace(")", " ").split()
        previous = ""
        for word in words:
            flag, previous = previous, word
            if flag in OUTPUT_FLAGS:
                continue
            w = word.strip("\"'`,;:")
            if "=" in w:
                w = w.split("=", 1)[1].strip("\"'")
            w = re.sub(r"\[[\w,.-]*\]$", "", w)  # a pip extra: ./bindings/python[test]
            if w.startswith("./"):
                w = w[2:]
            w = w.rstrip("/.")
            first = w.split("/", 1)[0]
            if first in TOP_LEVEL and ("/" in w or os.path.isfile(os.path.join(REPO, w))):
                paths.append(w)
    return paths


@by_lang(SHELL)
def test_shell_example_names_existing_paths(block):
    skip_if_not_run(block)
    missing = [p for p in named_paths(block.code) if not os.path.exists(os.path.join(REPO, p))]
    assert not missing, "%s names paths that do not exist: %s" % (block.where, missing)


def test_path_finder_sees_the_paths_of_a_command():
    code = ('pip install "./bindings/python[test]"   # see docs/reference.md\n'
            "PYTHONPATH=bindings/python python examples/torch_train.py --out build/x\n"
            "python benchmarks/python/bench_vs_torch.py --out benchmarks/results/new\n")
    assert named_paths(code) == ["bindings/python", "docs/reference.md", "bindings/python",
                                 "examples/torch_train.py", "benchmarks/python/bench_vs_torch.py"]


# -------------------------------------------------------------------------------------- links

# Files outside the repository that pages used to name (spelled so that a search for them does
# not find this file).
OUTSIDE_NAMES = (".." + "/shared", "DESIGN" + ".md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def outside_fences(text: str):
    """The lines of a page that are not inside fenced blocks."""
    fence = None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if closes(line, fence):
                fence = None
            continue
        yield line


def prose(text: str) -> str:
    """The page without fenced blocks and inline code."""
    return "\n".join(re.sub(r"`[^`]*`", "", line) for line in outside_fences(text))


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: str) -> set:
    """The anchors of a page's headings, as GitHub makes them (inline code text included)."""
    seen, out = {}, set()
    for line in outside_fences(read(page)):
        h = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            base = slug(h.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else "%s-%d" % (base, n))
    return out


@pytest.mark.parametrize("page", LINKED_PAGES)
def test_links_stay_inside_the_repository_and_resolve(page):
    text = read(page)
    problems = ["line %d names a file outside the repository" % (i + 1)
                for i, line in enumerate(text.split("\n"))
                if any(name in line for name in OUTSIDE_NAMES)]
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        here = os.path.dirname(os.path.join(REPO, page))
        resolved = os.path.normpath(os.path.join(here, path)) if path else os.path.join(REPO, page)
        if os.path.relpath(resolved, REPO).startswith(".."):
            problems.append("%s leaves the repository" % target)
            continue
        if not os.path.exists(resolved):
            problems.append("%s does not exist" % target)
            continue
        if anchor and resolved.endswith(".md"):
            rel = os.path.relpath(resolved, REPO)
            if anchor not in anchors(rel):
                problems.append("%s: no heading with anchor #%s" % (target, anchor))
    assert not problems, "%s: %s" % (page, "; ".join(problems))
