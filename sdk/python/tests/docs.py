"""The Python examples of the documentation, as files: every ```python block that starts with a
``# <path>`` comment line is the file at that path. Tests write them out and run them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

from support import REPO

SDK_DOC = REPO / "docs" / "sdk-python.md"
FRAMEWORKS_DOC = REPO / "docs" / "frameworks.md"

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples(doc: Path) -> Dict[str, str]:
    """``{path: source}`` of the doc's Python examples."""
    found: Dict[str, str] = {}
    for match in BLOCK.finditer(doc.read_text(encoding="utf-8")):
        source = match.group(1)
        first = source.splitlines()[0]
        assert first.startswith("# ") and first.endswith(".py"), (
            f"{doc.name}: a python block without a '# file.py' line: {first!r}"
        )
        found[first[2:]] = source
    return found


def write_examples(doc: Path, into: Path, *paths: str) -> Path:
    """Writes the named examples of ``doc`` under ``into`` (packages get an ``__init__.py``)."""
    blocks = examples(doc)
    for path in paths:
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent != into:
            (target.parent / "__init__.py").touch()
        target.write_text(blocks[path], encoding="utf-8")
    return into
