"""Print rendered files (manifests, Dockerfiles), or write them under a folder.

Every `manifests` kind and the hpo/pipeline renderers end the same way: with ``-o DIR``
the files are written there (sub-folders created), without it they are printed so that
``| kubectl apply -f -`` works.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.console import Console

__all__ = ["emit_files"]


def emit_files(files: Mapping[str, str | bytes], output: Path | None, console: Console) -> None:
    """Print rendered files, or write them under ``output`` (sub-folders created).

    Printed, an all-YAML set becomes one multi-document stream (``| kubectl apply -f -``
    works); a mixed set (a Dockerfile, nginx.conf) gets a ``# --- name ---`` line per file.
    Binary contents are only written, never printed.
    """
    if output is None:
        texts = {name: data for name, data in files.items() if isinstance(data, str)}
        if all(name.endswith((".yaml", ".yml")) for name in texts):
            console.print("\n---\n".join(text.rstrip("\n") for text in texts.values()))
            return
        for filename, text in texts.items():
            console.print(f"# --- {filename} ---")
            console.print(text.rstrip("\n"))
        return
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    for filename, data in files.items():
        path = output / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        console.print(str(path))
