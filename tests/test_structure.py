"""The package's structure, pinned: no import circles, no private names across
modules, layers that only import downwards, examples that import only dctnet,
a design document whose sections the docstrings cite.

Two independent views of the import graph:

* static: every module's source is parsed with ``ast`` and every import statement
  counts, also those inside functions (where circles hide) and those that run
  only on some path. ``from .a import b`` and ``import a.b`` also depend on the
  ``__init__`` of every package above the target that does not contain the
  importing module, since Python runs it first; so importing the ``dctnet``
  façade (``from . import __version__``) from inside the package is a circle.
* dynamic: each module is imported in a fresh interpreter on its own, with
  ``dctnet/__init__.py`` bypassed, so that no module relies on the façade having
  imported something first.

The modules come from the source tree as ``pyproject.toml`` installs it
(``dctnet.kernels`` lives in the top-level ``kernels/`` folder). The layers are
those of docs/design.md §1.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "dctnet"

# docs/design.md §1, bottom to top. A module may import modules of its own layer
# and of the layers below; a name matches itself and everything under it.
LAYERS = (
    ("plain arrays", ("dctnet.version", "dctnet.progressbar", "dctnet.backend", "dctnet.threads", "dctnet.buffers",
                      "dctnet.transform", "dctnet.jpeg", "dctnet.kernels", "dctnet.qtables", "dctnet.augment",
                      "dctnet.resize")),
    ("autograd", ("dctnet.autograd", "dctnet.ops", "dctnet.gradcheck")),
    ("functional", ("dctnet.functional",)),
    ("nn/models", ("dctnet.nn", "dctnet.models", "dctnet.optim", "dctnet.jpegdl", "dctnet.engine")),
    ("conversion", ("dctnet.conversion", "dctnet.jpeg_batches")),
    ("files", ("dctnet.atomic", "dctnet.io", "dctnet.weights")),
    ("data", ("dctnet.datasets",)),
    ("distributed", ("dctnet.distributed",)),
    ("training", ("dctnet.training", "dctnet.plots")),
)
PLAIN_ARRAYS = "plain arrays"
NO_MPI = ("dctnet.datasets", "dctnet.conversion")  # they take a communicator, never import one
MPI = ("dctnet.distributed", "mpi4py")


# ----------------------------------------------------------------------------- the source tree


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """``{package: folder}`` as ``[tool.setuptools] package-dir`` of ``pyproject.toml`` maps them."""
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib

        table = tomllib.loads(text).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    except ImportError:  # Python 3.10: the one inline table this project writes
        found = re.search(r"^package-dir\s*=\s*\{(.*)\}\s*$", text, re.M)
        table = dict(re.findall(r'"([\w.]*)"\s*=\s*"([^"]*)"', found.group(1))) if found else {}
    dirs = {name: root / folder for name, folder in table.items() if name}
    dirs.setdefault(PACKAGE, root / PACKAGE)
    return dirs


def installed_packages(root: Path = ROOT) -> list[str]:
    """``[tool.setuptools] packages`` of ``pyproject.toml``."""
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib

        return tomllib.loads(text).get("tool", {}).get("setuptools", {}).get("packages", [])
    except ImportError:  # Python 3.10: the one-line list this project writes
        found = re.search(r"^packages\s*=\s*\[(.*)\]\s*$", text, re.M)
        return re.findall(r'"([\w.]+)"', found.group(1)) if found else []


def discover(dirs: dict[str, Path]) -> dict[str, Path]:
    """``{module name: source file}`` of every module and package under the mapped folders."""
    modules = {}
    mapped = {folder.resolve() for folder in dirs.values()}
    for name, folder in sorted(dirs.items(), key=lambda item: item[0].count(".")):
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder)
            if "__pycache__" in rel.parts or any(
                    (folder / Path(*rel.parts[:i])).resolve() in mapped for i in range(1, len(rel.parts))):
                continue  # a folder mapped to a package of its own is read under that name
            parts = rel.with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((name,) + parts)] = path
    return modules


# ----------------------------------------------------------------------------- imports, statically


@dataclass(frozen=True)
class Site:
    """Where an import statement is: file, line, enclosing function, the statement's text."""

    path: Path
    line: int
    scope: str
    text: str

    def __str__(self):
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line} ({self.scope}): {self.text}"


def is_private(name: str) -> bool:
    """``_x`` is private; dunders such as ``__version__`` are public."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def owner(name: str, modules) -> str | None:
    """The longest prefix of the dotted ``name`` that is one of ``modules``."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in modules:
            return candidate
    return None


def inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


class _Visitor(ast.NodeVisitor):
    def __init__(self, module, path, is_package, source, modules):
        self.module, self.path, self.source, self.modules = module, path, source, modules
        self.package = module if is_package else module.rpartition(".")[0]
        self.scopes = []
        self.imports = []  # (Site, kind, target, name): kind "module" or "from"
        self.aliases = {}  # local name -> dctnet module it is bound to (anywhere in the module)
        self.chains = []  # (Site, name, [attr, ...]) of every attribute chain on a plain name

    def _site(self, node):
        text = ast.get_source_segment(self.source, node) or ""
        scope = "in " + ".".join(self.scopes) if self.scopes else "at module level"
        return Site(self.path, node.lineno, scope, " ".join(text.split()))

    def _scoped(self, node):
        self.scopes.append(node.name)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Import(self, node):
        site = self._site(node)
        for alias in node.names:
            self.imports.append((site, "module", alias.name, None))
            if alias.name in self.modules:  # "import a.b" binds a; "import a.b as c" binds c to a.b
                bound = alias.name if alias.asname else alias.name.partition(".")[0]
                self.aliases[alias.asname or bound] = bound

    def visit_ImportFrom(self, node):
        site = self._site(node)
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module
        for alias in node.names:
            self.imports.append((site, "from", target, alias.name))
            if f"{target}.{alias.name}" in self.modules:
                self.aliases[alias.asname or alias.name] = f"{target}.{alias.name}"

    def visit_Attribute(self, node):
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            self.chains.append((self._site(node), value.id, chain[::-1]))
            return  # the inner nodes are parts of this chain
        self.generic_visit(node)

    @property
    def attributes(self):
        """``(Site, module, name)`` of each private name used as an attribute of an imported module."""
        found = []
        for site, name, chain in self.chains:
            module = self.aliases.get(name)
            for attr in chain if module else ():
                if is_private(attr):
                    found.append((site, module, attr))
                    break
                if f"{module}.{attr}" not in self.modules:
                    break  # an object of the module: its attributes are not module names
                module = f"{module}.{attr}"
        return found


@dataclass
class Edge:
    importer: str
    target: str
    site: Site
    implicit: bool  # the __init__ of a package above what the statement names


class ImportGraph:
    """The static import graph of the modules under ``dirs``; see the module docstring."""

    def __init__(self, dirs: dict[str, Path]):
        self.files = discover(dirs)
        self.modules = set(self.files)
        self.visitors = {name: self._parse(name, path) for name, path in sorted(self.files.items())}
        self.edges = [e for v in self.visitors.values() for e in self._edges(v)]

    def _parse(self, name, path):
        source = path.read_text()
        visitor = _Visitor(name, path, path.name == "__init__.py", source, self.modules)
        visitor.visit(ast.parse(source, str(path)))
        return visitor

    def _edges(self, v):
        for site, kind, target, name in v.imports:
            if kind == "from" and f"{target}.{name}" in self.modules:
                target = f"{target}.{name}"
            elif kind == "from" and name != "*":
                target = owner(target, self.modules) or target
            named = owner(target, self.modules) if kind == "module" else target
            if named is None or named not in self.modules:
                continue  # not one of ours
            if named != v.module:
                yield Edge(v.module, named, site, False)
            parts = named.split(".")
            for i in range(1, len(parts)):
                above = ".".join(parts[:i])
                if above in self.modules and not inside(v.module, above):
                    yield Edge(v.module, above, site, True)

    def external(self, module):
        """``(site, top-level name)`` of the imports of ``module`` from outside the package."""
        for site, kind, target, _ in self.visitors[module].imports:
            if target and owner(target, self.modules) is None:
                yield site, target.partition(".")[0]

    def adjacency(self):
        graph = defaultdict(dict)  # importer -> {target: first site}
        for e in self.edges:
            graph[e.importer].setdefault(e.target, e.site)
        return graph

    def circles(self):
        """One shortest circle through each module that lies on one, as ``[m0, m1, ..., m0]``."""
        graph = self.adjacency()
        circles, seen = [], set()
        for start in sorted(self.modules):
            parent, queue = {start: None}, deque([start])
            found = None
            while queue and found is None:
                node = queue.popleft()
                for nxt in sorted(graph.get(node, ())):
                    if nxt == start:
                        found = node
                        break
                    if nxt not in parent:
                        parent[nxt] = node
                        queue.append(nxt)
            if found is None:
                continue
            path = [found]
            while path[-1] != start:
                path.append(parent[path[-1]])
            path = path[::-1] + [start]
            key = frozenset(zip(path, path[1:]))
            if key not in seen:
                seen.add(key)
                circles.append(path)
        return circles

    def private_uses(self):
        """``(site, what)`` for every use of another module's private name."""
        found = []
        for v in self.visitors.values():
            for site, kind, target, name in v.imports:
                if owner(target or "", self.modules) is None:
                    continue
                dotted = target + ("" if kind == "module" or name == "*" else f".{name}")
                parts = dotted.split(".")
                for i in range(1, len(parts)):
                    holder = ".".join(parts[:i])
                    if is_private(parts[i]) and holder in self.modules and not (
                            f"{holder}.{parts[i]}" in self.modules and inside(v.module, holder)):
                        # a private module is its own package's; a private name is its module's
                        found.append((site, f"{holder}.{parts[i]}"))
                        break
            for site, module, attr in v.attributes:
                if module != v.module:
                    found.append((site, f"{module}.{attr}"))
        return found


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of ``module`` (the longest matching name wins); None if unranked."""
    best = None
    for rank, (_, names) in enumerate(LAYERS):
        for name in names:
            if inside(module, name) and (best is None or len(name) > len(best[1])):
                best = (rank, name)
    return None if best is None else best[0]


@pytest.fixture(scope="module")
def graph():
    return ImportGraph(package_dirs())


def _report(title, lines, fix, count=None):
    return f"{title} ({len(lines) if count is None else count}):\n  " + "\n  ".join(lines) + f"\n{fix}"


# ----------------------------------------------------------------------------- the static checks


def test_the_package_is_found(graph):
    assert PACKAGE in graph.modules and f"{PACKAGE}.kernels" in graph.modules, sorted(graph.modules)
    assert graph.files[f"{PACKAGE}.kernels"] == ROOT / "kernels" / "__init__.py"


def test_no_import_circles(graph):
    adjacency, circles = graph.adjacency(), graph.circles()
    lines = []
    for path in circles:
        lines.append(" -> ".join(path))
        lines += [f"    {a} -> {b}: {adjacency[a][b]}" for a, b in zip(path, path[1:])]
    assert not lines, _report(
        "import circles between modules of dctnet, each step with its import statement", lines,
        "Break each circle: move what both sides need into a lower module, or pass it in; an import "
        "inside a function is still an import. Importing the dctnet package (its __init__) from a module "
        "inside it counts as importing every module it imports.", count=len(circles))


def test_no_module_imports_private_names_of_another(graph):
    uses = sorted(f"{what}  <-  {site}" for site, what in graph.private_uses())
    assert not uses, _report(
        "private (underscore) names of one module used by another", uses,
        "Make the name public (drop the underscore, document it) in the module that owns it, or move "
        "the code that needs it there.")


def _examples():
    return sorted(p for p in (ROOT / "examples").rglob("*.py") if "__pycache__" not in p.parts)


def test_no_example_imports_another_example():
    names = {p.stem for p in _examples()}
    found = []
    for path in _examples():
        source = path.read_text()
        for node in ast.walk(ast.parse(source, str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = ["." * node.level + (node.module or "")]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if func in ("import_module", "__import__", "run_module", "run_path", "spec_from_file_location"):
                    arg = node.args[1] if func == "spec_from_file_location" and len(node.args) > 1 else node.args[0]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        targets = [Path(arg.value).stem if arg.value.endswith(".py") else arg.value]
            for target in targets:
                top = target.partition(".")[0]
                if target.startswith(".") or (top in names and top != path.stem):
                    text = " ".join((ast.get_source_segment(source, node) or "").split())
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    assert not found, _report(
        "examples that import another example", found,
        "Examples import only dctnet (and third-party packages): move the shared code into the library.")


def test_examples_use_only_public_names(graph):
    found = []
    for path in _examples():
        source = path.read_text()
        visitor = _Visitor("__example__", path, False, source, graph.modules)
        visitor.visit(ast.parse(source, str(path)))
        for site, kind, target, name in visitor.imports:
            if target and owner(target, graph.modules):
                dotted = target + ("" if kind == "module" or name == "*" else f".{name}")
                if any(is_private(part) for part in dotted.split(".")):
                    found.append(f"{dotted}  <-  {site}")
        found += [f"{module}.{attr}  <-  {site}" for site, module, attr in visitor.attributes]
    assert not found, _report("examples that use private names of dctnet", sorted(found),
                              "Examples use the public API only: make the name public, or do without it.")


def _layer_violations(graph, rule):
    lines = []
    for e in sorted(graph.edges, key=lambda e: (e.importer, e.target, e.site.line)):
        below, above = layer_of(e.importer), layer_of(e.target)
        if below is not None and above is not None and rule(below, above, e):
            how = " (runs its __init__)" if e.implicit else ""
            lines.append(f"{e.importer} [{LAYERS[below][0]}] imports {e.target} [{LAYERS[above][0]}]{how}: {e.site}")
    return lines


def test_plain_array_layer_imports_only_plain_arrays(graph):
    plain = [name for name, _ in LAYERS].index(PLAIN_ARRAYS)
    lines = _layer_violations(graph, lambda a, b, e: a == plain and b != plain)
    for module in sorted(graph.modules):
        if module != PACKAGE and layer_of(module) == plain:
            lines += [f"{module} imports the dctnet package itself: {e.site}" for e in graph.edges
                      if e.importer == module and e.target == PACKAGE]
    assert not lines, _report(
        "plain-array modules (backend, transform, the JPEG reader, kernels, qtables) that import autograd or above",
        lines, "The plain-array layer works on NumPy/CuPy arrays only: name a Tensor by duck typing or let the "
               "caller unwrap it, and move anything that needs a higher layer up (docs/design.md §1).")


def test_data_and_conversion_import_no_mpi(graph):
    lines = []
    for module in sorted(graph.modules):
        if not any(inside(module, name) for name in NO_MPI):
            continue
        lines += [f"{module} imports {e.target}: {e.site}" for e in graph.edges
                  if e.importer == module and any(inside(e.target, m) for m in MPI)]
        lines += [f"{module} imports {top}: {site}" for site, top in graph.external(module) if top in MPI]
    assert not lines, _report(
        "the data layer or the conversion importing the MPI layer", lines,
        "Take a communicator (an object with the collectives) as an argument, and let each layer "
        "declare its own JPEG-domain form, so that only dctnet.distributed knows MPI.")


def test_layers_import_only_downwards(graph):
    lines = _layer_violations(graph, lambda a, b, e: b > a)
    assert not lines, _report(
        "modules that import a higher layer than their own (docs/design.md §1)", lines,
        "Move the shared code down, or pass what the lower layer needs in as an argument.")


def test_every_module_has_a_layer(graph):
    unranked = sorted(m for m in graph.modules if m != PACKAGE and layer_of(m) is None)
    assert not unranked, _report(
        "modules of dctnet in no layer", unranked,
        "Add each to LAYERS in tests/test_structure.py (and to docs/design.md §1).")


def test_every_package_is_installed():
    listed = set(installed_packages())
    packages = sorted(name for name, path in discover(package_dirs()).items() if path.name == "__init__.py")
    missing = [p for p in packages if p not in listed]
    assert not missing, _report(
        "packages of the source tree missing from [tool.setuptools] packages in pyproject.toml", missing,
        "List them there, or a (non-editable) install leaves them out.")


# ----------------------------------------------------------------------------- the design document

DESIGN = ROOT / "docs" / "design.md"
CITED = re.compile(r"design\.md\s*§\s*(\d+)")


def _sections():
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^## (\d+)\. (.+)$", DESIGN.read_text(), re.M)}


def _cited_files():
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for folder in ("dctnet", "kernels", "examples", "benchmarks", "tests", "docs"):
        files += sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.md"))
    return [f for f in files if f.is_file() and f != Path(__file__).resolve()]


def test_design_document_has_its_sections():
    assert DESIGN.is_file(), "docs/design.md is missing"
    titles = ["Layout", "Array conventions", "The JPEG-domain operators", "Exact evaluation strategies",
              "The JPEG reader", "Backends and kernels", "Autograd", "Files", "Errors"]
    assert _sections() == dict(enumerate(titles, 1))


def test_design_document_citations_resolve():
    sections = _sections()
    stale = re.compile(r"(?<![\w/])DESIGN\.md")  # the old name of a document the repository never had
    bad = []
    for path in _cited_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            bad += [where for m in CITED.finditer(line) if int(m.group(1)) not in sections]
            if stale.search(line):
                bad.append(where)
    assert not bad, _report(
        "citations of the design document that do not resolve (no such section, or the old name DESIGN.md)", bad,
        f"Cite docs/design.md §N with N one of {sorted(sections)}: "
        + ", ".join(f"§{n} {t}" for n, t in sorted(sections.items())))


# ----------------------------------------------------------------------------- each module on its own

# Run in a fresh interpreter: import one module with dctnet/__init__.py replaced by a
# bare package (unless the module is the package itself), every dctnet module found
# in this checkout as pyproject.toml maps it. Prints the imported module's file.
_ALONE = r"""
import importlib, importlib.abc, importlib.machinery, importlib.util, json, sys, types
from pathlib import Path

name, dirs = sys.argv[1], {k: Path(v) for k, v in json.loads(sys.argv[2]).items()}


class Checkout(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        roots = [r for r in dirs if fullname == r or fullname.startswith(r + ".")]
        if not roots:
            return None
        root = max(roots, key=len)
        folder = dirs[root].joinpath(*fullname[len(root):].split(".")[1:])
        if (folder / "__init__.py").is_file():
            return importlib.util.spec_from_file_location(
                fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])
        if folder.with_suffix(".py").is_file():
            return importlib.util.spec_from_file_location(fullname, folder.with_suffix(".py"))
        return None


sys.meta_path.insert(0, Checkout())
top = "dctnet"
if name != top:
    bare = types.ModuleType(top)
    bare.__spec__ = importlib.machinery.ModuleSpec(top, None, is_package=True)
    bare.__spec__.submodule_search_locations = bare.__path__ = [str(dirs[top])]
    sys.modules[top] = bare
module = importlib.import_module(name)
print(json.dumps(module.__file__))
"""


def _import_alone(name, dirs):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:
        done = subprocess.run([sys.executable, "-c", _ALONE, name, json.dumps({k: str(v) for k, v in dirs.items()})],
                              capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return False, "did not finish importing within 300 s"
    if done.returncode:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-6:]
        return False, "\n      ".join(tail) or f"exit status {done.returncode}"
    return True, json.loads(done.stdout.strip().splitlines()[-1])


def test_each_module_imports_on_its_own():
    dirs = package_dirs()
    files = discover(dirs)
    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        results = dict(zip(files, pool.map(lambda name: _import_alone(name, dirs), files)))
    failed = []
    for name, (ok, result) in sorted(results.items()):
        if not ok:
            failed.append(f"{name}:\n      {result}")
        elif Path(result).resolve() != files[name].resolve():
            failed.append(f"{name}: imported from {result}, not from {files[name]}")
    assert not failed, _report(
        "modules that do not import on their own in a fresh interpreter (dctnet/__init__.py bypassed)", failed,
        "A module imports everything it uses itself, and nothing imports it back while it is half done.")


# ----------------------------------------------------------------------------- the checks themselves


def _toy(tmp_path, files):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return ImportGraph({"dctnet": tmp_path / "dctnet", "dctnet.kernels": tmp_path / "kernels"})


def test_the_checks_find_what_they_look_for(tmp_path):
    g = _toy(tmp_path, {
        "dctnet/__init__.py": "from .a import f\nfrom . import sub, c\n",
        "dctnet/a.py": "def f():\n    from . import b  # a circle hidden in a function\n",
        "dctnet/b.py": "from .a import _hidden\nfrom . import a\nx = a._private\nfrom .sub import _impl\n",
        "dctnet/c.py": "from . import __version__\n",  # the façade
        "dctnet/sub/__init__.py": "from ._impl import g\n",
        "dctnet/sub/_impl.py": "from dctnet.kernels import k\n",
        "dctnet/d.py": "import dctnet.sub._impl as impl\nfrom .sub import g\n",
        "kernels/__init__.py": "",
        "kernels/k.py": "import numpy\n",
    })
    assert g.files["dctnet.kernels.k"] == tmp_path / "kernels" / "k.py"
    assert {frozenset(c) for c in g.circles()} == {frozenset({"dctnet.a", "dctnet.b"}),
                                                   frozenset({"dctnet", "dctnet.c"})}
    circle = next(c for c in g.circles() if "dctnet.a" in c)
    assert g.adjacency()["dctnet.a"]["dctnet.b"].scope == "in f"
    assert sorted(what for _, what in g.private_uses()) == [
        "dctnet.a._hidden", "dctnet.a._private", "dctnet.sub._impl", "dctnet.sub._impl"]
    assert circle[0] == circle[-1]
    implicit = {(e.importer, e.target) for e in g.edges if e.implicit}
    assert ("dctnet.d", "dctnet.sub") in implicit and ("dctnet.sub._impl", "dctnet.kernels") in implicit
    assert ("dctnet.sub._impl", "dctnet.sub") not in implicit  # its own package is already under way
    assert layer_of("dctnet.kernels.k") == 0 and layer_of("dctnet.jpeg.markers") == 0
    assert layer_of("dctnet.functional.dct_conv") == 2 and layer_of("dctnet.something_new") is None


def test_a_module_that_needs_the_facade_or_a_circle_does_not_import_alone(tmp_path):
    for rel, text in {
        "dctnet/__init__.py": "__version__ = '0'\nfrom . import a, c\n",
        "dctnet/a.py": "y = 1\nfrom .b import x\n",
        "dctnet/b.py": "from .a import y\nx = 2\n",  # imports only after a, as the façade does
        "dctnet/c.py": "from . import __version__\n",
        "kernels/__init__.py": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    dirs = {"dctnet": tmp_path / "dctnet", "dctnet.kernels": tmp_path / "kernels"}
    assert _import_alone("dctnet", dirs) == (True, str(tmp_path / "dctnet" / "__init__.py"))
    assert _import_alone("dctnet.kernels", dirs) == (True, str(tmp_path / "kernels" / "__init__.py"))
    assert _import_alone("dctnet.a", dirs)[0]
    for name in ("dctnet.b", "dctnet.c"):
        ok, message = _import_alone(name, dirs)
        assert not ok and "ImportError" in message, (name, message)
