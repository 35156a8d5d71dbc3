"""The embedded default corpus: the running Python's standard library, as three domains.

- `code`: library modules (`.py` files outside test folders and site-packages),
- `tests`: the standard library's own test suite,
- `docs`: per module, its docstrings (module, classes, functions) as one document; plus each
  reference-manual topic that ships with Python (`pydoc_data.topics`).

Document ids are readable and stable: `code:json/decoder.py`, `docs:topic:if`.
"""

from __future__ import annotations

import ast
import hashlib
import sysconfig
from collections.abc import Iterator
from pathlib import Path

TEST_FOLDERS = {"test", "tests", "idle_test"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _module_files() -> Iterator[tuple[str, Path]]:
    root = stdlib_dir()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "site-packages" or "__pycache__" in rel.parts:
            continue
        domain = "tests" if TEST_FOLDERS.intersection(rel.parts[:-1]) else "code"
        yield domain, path


def _docstrings(source: bytes, module: str) -> str | None:
    """The module's docstrings as one readable document, or None when it has none (or does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    parts = []
    module_doc = ast.get_docstring(tree)
    if module_doc:
        parts.append(f"{module}\n\n{module_doc}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(f"{module}.{node.name}\n\n{doc}")
    return "\n\n".join(parts) if parts else None


def _topics() -> Iterator[tuple[str, str]]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return
    for name in sorted(topics):
        yield name, topics[name]


def _capped(docs: list, max_docs: int | None) -> list:
    """A deterministic sample of at most max_docs documents: those whose id hashes lowest."""
    if max_docs is None or len(docs) <= max_docs:
        return docs
    ranked = sorted(docs, key=lambda doc: hashlib.sha1(doc.id.encode()).hexdigest())
    return sorted(ranked[:max_docs], key=lambda doc: doc.id)


def documents(cfg: dict) -> Iterator:
    """Raw documents of the configured domains (see the module docstring)."""
    from isoflop.corpus import RawDocument

    wanted = set(cfg["domains"])
    root = stdlib_dir()
    by_domain: dict[str, list] = {domain: [] for domain in ("code", "tests", "docs")}
    for domain, path in _module_files():
        rel = path.relative_to(root).as_posix()
        payload = path.read_bytes()
        if domain in wanted:
            by_domain[domain].append(RawDocument(f"{domain}:{rel}", domain, payload, str(path)))
        if domain == "code" and "docs" in wanted:
            text = _docstrings(payload, rel[:-3].replace("/", "."))
            if text:
                by_domain["docs"].append(RawDocument(f"docs:{rel}", "docs", text, f"{path} (docstrings)"))
    if "docs" in wanted:
        for name, text in _topics():
            by_domain["docs"].append(RawDocument(f"docs:topic:{name}", "docs", text, f"pydoc topic {name}"))
    for domain in ("code", "tests", "docs"):
        yield from _capped(by_domain[domain], cfg["max_docs_per_domain"])
