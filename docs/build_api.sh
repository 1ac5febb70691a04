#!/usr/bin/env bash
# Build jebm's API reference (HTML, from the docstrings) with pdoc.
#
#   docs/build_api.sh [OUT_DIR]        # default OUT_DIR: site/ at the repo root
#
# Needs pdoc in the Python that runs it ($PYTHON, default python3):
#   pip install 'pdoc>=15,<17'
# Documents every public module of this checkout's src/jebm (each *.py whose
# dotted name has no _-prefixed part), Google-style docstrings, MathJax math.
# Exits non-zero, after listing every problem, when the reference is broken:
#   * a public module fails to import;
#   * pdoc warns (e.g. a name in an __all__ that does not resolve), or jebm
#     itself warns while being imported;
#   * a docstring cannot be converted (pdoc raises);
#   * an explicit reference role (:func:`x`, :class:`x`, :mod:`x`, :meth:,
#     :attr:, :data:, ...) names a jebm object that is not in the reference
#     (pdoc would silently render it as unlinked code), or names nothing at all;
#   * a key page (jebm, jebm.samplers, jebm.evaluation, jebm.energies) is missing;
#   * a guide (docs/*.md, rendered to OUT/docs/<name>.html and listed on the jebm
#     page) has no "# Title" first line, or links to a file or anchor that does
#     not exist.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/site}"
PYTHON="${PYTHON:-python3}"

if [[ -e "$OUT" && ! -d "$OUT" ]]; then
  echo "build_api.sh: $OUT exists and is not a directory" >&2
  exit 2
fi
if [[ -d "$OUT" && -n "$(ls -A "$OUT")" && ! -f "$OUT/jebm.html" ]]; then
  echo "build_api.sh: refusing to replace $OUT: not empty and not an earlier API build (no jebm.html)" >&2
  exit 2
fi
rm -rf "$OUT"
mkdir -p "$OUT"

# Document this checkout's code, whatever jebm the interpreter has installed.
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
# Nothing here needs an accelerator; keep jax quiet and on the CPU.
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"

"$PYTHON" - "$OUT" "$ROOT" <<'PY'
import functools
import importlib
import importlib.util
import os
import pathlib
import re
import sys
import traceback
import warnings
from html import escape

try:
    import pdoc
    import pdoc.doc
    import pdoc.render
    import pdoc.render_helpers
except ImportError:
    sys.exit("build_api.sh: pdoc is not installed: pip install 'pdoc>=15,<17'")

out = pathlib.Path(sys.argv[1])
root = pathlib.Path(sys.argv[2])
problems = []

# --- warnings: pdoc's own, and any jebm raises at import, are fatal ----------
PDOC_DIR = str(pathlib.Path(pdoc.__file__).parent)
JEBM_DIR = str(pathlib.Path(importlib.util.find_spec("jebm").origin).parent)
if pathlib.Path(JEBM_DIR).resolve() != (pathlib.Path(sys.argv[2]) / "src" / "jebm").resolve():
    sys.exit(f"build_api.sh: python imports jebm from {JEBM_DIR}, not from {sys.argv[2]}/src/jebm")


def showwarning(message, category, filename, lineno, file=None, line=None):
    where = f"{filename}:{lineno}"
    fatal = filename.startswith(PDOC_DIR) or filename.startswith(JEBM_DIR)
    print(f"{'ERROR' if fatal else 'warning'}: {category.__name__}: {message} ({where})", file=sys.stderr)
    if fatal:
        problems.append(f"{category.__name__}: {message}")


warnings.simplefilter("default")
warnings.showwarning = showwarning

# --- the public modules ------------------------------------------------------
names = []
for path in sorted(pathlib.Path(JEBM_DIR).rglob("*.py")):
    parts = ["jebm", *path.relative_to(JEBM_DIR).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    if not any(p.startswith("_") for p in parts):
        names.append(".".join(parts))

# jebm's top level re-exports train_and_evaluate, restore, sample, Restored
# lazily (a module __getattr__). pdoc reads a module's __dict__, so it cannot
# see them, and would take each name in __all__ for a submodule to import.
# Resolve them here, in this process only, so jebm.html documents them.
try:
    import jebm

    for name in jebm.__all__:
        if name not in vars(jebm):
            setattr(jebm, name, getattr(jebm, name))
except Exception:
    problems.append(f"import jebm (and its lazy exports) failed:\n{traceback.format_exc()}")

# --- the guides (docs/*.md): listed on the jebm page, rendered after the modules
guides = {}
for page in sorted((root / "docs").glob("*.md")):
    first = page.read_text(encoding="utf-8").partition("\n")[0]
    if not first.startswith("# "):
        problems.append(f"docs/{page.name}: the first line must be the page's '# Title', got {first!r}")
    guides[page] = first.removeprefix("# ").strip() or page.stem
if guides and "jebm" in sys.modules:
    listing = "\n".join(f"- [{title}](docs/{page.stem}.html)" for page, title in guides.items())
    jebm.__doc__ = f"{jebm.__doc__}\n\n## Guides\n\n{listing}\n"

all_modules = {}
for name in names:
    try:
        all_modules[name] = pdoc.doc.Module.from_name(name)
    except Exception:
        problems.append(f"{name} does not import:\n{traceback.format_exc()}")


# NamedTuple classes' generated __new__ (pdoc documents it as __init__) claims
# a module "namedtuple_<Name>" that does not exist, so pdoc cannot resolve its
# string annotations (PEP 563) and warns. Point it at the class's module.
for module in all_modules.values():
    for value in list(vars(module.obj).values()):
        new = (getattr(value, "__new__", None) if isinstance(value, type) and issubclass(value, tuple)
               and value.__module__.partition(".")[0] == "jebm" else None)
        if new is not None and str(getattr(new, "__module__", "")).startswith("namedtuple_"):
            new.__module__ = value.__module__


# Module-level aliases of classes/functions from other libraries (``Array =
# jax.Array``, kept for annotations) would copy their library's whole
# documentation onto every page that has one. Leave them out, unless the
# module names them in its __all__ (then they are deliberate re-exports).
for module in all_modules.values():
    exported = set(getattr(module.obj, "__all__", ()))
    for name, member in list(module.members.items()):
        if (member.kind in ("class", "function") and name not in exported
                and member.taken_from[0].partition(".")[0] != "jebm"):
            del module.members[name]


# Each page's "Submodules" list: every documented child. (pdoc's default obeys
# __all__, which in jebm lists the re-exported API, not the submodules.)
def submodules(self):
    prefix = self.modulename + "."
    return [m for n, m in all_modules.items() if n.startswith(prefix) and "." not in n[len(prefix):]]


pdoc.doc.Module.submodules = functools.cached_property(submodules)
pdoc.doc.Module.submodules.__set_name__(pdoc.doc.Module, "submodules")

pdoc.render.configure(docformat="google", math=True, search=True, show_source=True,
                      footer_text=f"jebm {getattr(sys.modules.get('jebm'), '__version__', '')}")

# --- render (what pdoc.pdoc(..., output_directory=out) does) ------------------
for module in all_modules.values():
    try:
        html = pdoc.render.html_module(module, all_modules)
    except Exception:
        problems.append(f"rendering {module.modulename} failed:\n{traceback.format_exc()}")
        continue
    page = out / f"{module.fullname.replace('.', '/')}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(html, encoding="utf-8")
(out / "index.html").write_text(pdoc.render.html_index(all_modules), encoding="utf-8")
if search := pdoc.render.search_index(all_modules):
    (out / "search.js").write_text(search, encoding="utf-8")

# --- the guides' pages ---------------------------------------------------------
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg"}
anchors_wanted = []  # (guide, html page, anchor): checked once every page is written


def guide_link(page, target):
    """A guide's link as the HTML page needs it: another guide -> its .html; an image -> a copy in
    OUT/docs/assets/; any other file of the checkout -> a path relative to the page."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return target
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve()
    if not file.exists():
        problems.append(f"docs/{page.name}: the link {target!r} names a file that does not exist")
        return target
    if file.suffix == ".md" and file.parent == page.parent:
        page_html = f"{file.stem}.html"
        if anchor:
            anchors_wanted.append((page.name, out / "docs" / page_html, anchor))
        return page_html + (f"#{anchor}" if anchor else "")
    if file.suffix.lower() in IMAGE_SUFFIXES:
        relative = file.relative_to(root.resolve())
        copy = out / "docs" / "assets" / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(file.read_bytes())
        return f"assets/{relative.as_posix()}"
    return pathlib.Path(os.path.relpath(file, (out / "docs").resolve())).as_posix() + (f"#{anchor}" if anchor else "")


GUIDE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - jebm</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 58rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
code, pre {{ font-family: ui-monospace, monospace; font-size: .9em; }}
pre {{ background: #f6f8fa; padding: .75rem; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .5rem; vertical-align: top; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<nav><a href="../jebm.html">jebm API reference</a></nav>
{body}
</body>
</html>
"""

for page, title in guides.items():
    text = LINK.sub(lambda m: f"{m.group(1)}({guide_link(page, m.group(2))})", page.read_text(encoding="utf-8"))
    try:
        body = pdoc.render_helpers.to_html(text)
    except Exception:
        problems.append(f"rendering docs/{page.name} failed:\n{traceback.format_exc()}")
        continue
    target = out / "docs" / f"{page.stem}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(GUIDE.format(title=escape(title), body=body), encoding="utf-8")
for name, target, anchor in anchors_wanted:
    if target.is_file() and f'id="{anchor}"' not in target.read_text(encoding="utf-8"):
        problems.append(f"docs/{name}: the link to {target.stem}.md#{anchor} names no heading of that page")

# --- explicit reference roles must resolve -----------------------------------
ROLE = re.compile(r"(?::py)?:(mod|func|data|const|class|meth|attr|exc|obj):`([^`]+)`")


def is_public(doc):
    return "" if doc.name.startswith("_") and not doc.name.startswith("__") else "true"


def resolves_outside_jebm(target):
    """``target`` names an object outside jebm (builtins, numpy, scipy, ...)."""
    import builtins

    if "." not in target:
        return hasattr(builtins, target)
    parts = target.split(".")
    if parts[0] == "jebm":
        return False
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def walk(doc):
    yield doc
    for member in getattr(doc, "own_members", []):
        if member.kind == "class":
            yield from walk(member)
        else:
            yield member


seen = set()
for module in all_modules.values():
    context = {"module": module, "all_modules": all_modules, "is_public": is_public}
    for doc in walk(module):
        # Check each docstring once, on the page of the module that defines it.
        if doc.kind != "module" and doc.taken_from[0] != module.modulename:
            continue
        if (doc.modulename, doc.qualname) in seen:
            continue
        seen.add((doc.modulename, doc.qualname))
        # Skip docstrings pdoc inherits from outside (e.g. flax's Module.setup).
        own = vars(doc.obj).get("__doc__") if doc.kind == "class" else getattr(doc.obj, "__doc__", None)
        if doc.kind in ("class", "function") and not own:
            continue
        for kind, target in ROLE.findall(doc.docstring):
            code = target + ("()" if kind in ("func", "meth") else "")
            linked = pdoc.render_helpers.linkify(context, f"<code>{code}</code>", namespace=doc.qualname)
            if "<a href" not in linked and not resolves_outside_jebm(target):
                problems.append(f"{doc.fullname}: :{kind}:`{target}` does not resolve to a documented object")

# --- key pages ---------------------------------------------------------------
for page in ("index.html", "jebm.html", "jebm/samplers.html", "jebm/evaluation.html", "jebm/energies.html",
             *(f"docs/{guide.stem}.html" for guide in guides)):
    if not (out / page).is_file():
        problems.append(f"missing page {out / page}")

if problems:
    print(f"\nbuild_api.sh: the API reference is broken ({len(problems)} problem(s)):", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    sys.exit(1)
print(f"API reference: {len(all_modules)} modules and {len(guides)} guides -> {out}/index.html")
PY
