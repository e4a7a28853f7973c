"""Small helpers shared by the benchmark scripts: timing, peak memory, summaries, the JSON last line and
writing one ``## `` section of ``docs/results.md`` without touching the others.
"""

from __future__ import annotations

import json
import math
import re
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Timer", "timed", "peak_rss_mb", "mean_std", "fmt_mean_std", "emit_json", "write_section"]


class Timer:
    """Wall-clock and process CPU seconds of one timed block (filled in when the block ends).

    CPU time is the whole process's (all threads), so with ``--threads 1`` it is the compute a quiet
    single core would need; wall time also counts waiting for a core on a shared machine.
    """

    def __init__(self) -> None:
        self.wall = math.nan
        self.cpu = math.nan

    def as_dict(self) -> dict[str, float]:
        """``{"wall_s", "cpu_s"}`` rounded to 0.1 s."""
        return {"wall_s": round(self.wall, 1), "cpu_s": round(self.cpu, 1)}


@contextmanager
def timed() -> Iterator[Timer]:
    """Time a block: ``with timed() as t: ...`` then read ``t.wall`` and ``t.cpu``."""
    t = Timer()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall = time.perf_counter() - w0
        t.cpu = time.process_time() - c0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value; nan for none)."""
    vals = [float(v) for v in values]
    if not vals:
        return math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def fmt_mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"0.781 ± 0.004"`` (just the value for a single seed)."""
    mean, std = mean_std(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON line on stdout, flushed: the benchmark contract's last line."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, allow_nan=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, without importing numpy here.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_section(path: str | Path, heading: str, body: str, marker: str | None = None) -> None:
    """Write ``body`` into the ``## heading`` section of a Markdown file, leaving other sections as they are.

    A section runs from its ``## `` line to the next ``## `` line (or the end of the file). With ``marker``,
    the generated text sits between ``<!-- marker:begin -->`` and ``<!-- marker:end -->``: when the
    section already holds both, only the text between them is replaced, so hand-written discussion around
    them survives a re-run. Otherwise the whole section is (re)written. A missing file is created with a
    ``# Results`` title.

    Args:
        path: The Markdown file (e.g. ``docs/results.md``).
        heading: The section title without the ``## `` prefix.
        body: The generated text, without the heading line.
        marker: Name of the begin/end comment pair, or None to own the whole section.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Results\n"
    body = body.strip()
    if marker is not None:
        begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
        body = f"{begin}\n{body}\n{end}"
    pattern = re.compile(rf"^## {re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    found = pattern.search(text)
    if found and marker is not None and begin in found.group(0) and end in found.group(0):
        old = found.group(0)
        i, j = old.index(begin), old.index(end) + len(end)
        new = text[: found.start()] + old[:i] + body + old[j:] + text[found.end() :]
    elif found:
        new = text[: found.start()] + f"## {heading}\n\n{body}\n\n" + text[found.end() :]
    else:
        new = text.rstrip() + f"\n\n## {heading}\n\n{body}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new.rstrip() + "\n", encoding="utf-8")


def layered_config(
    defaults: dict[str, dict[str, Any]],
    quick_sizes: dict[str, dict[str, Any]],
    quick: bool = False,
    overrides: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Benchmark settings: a copy of ``defaults``, then ``quick_sizes`` if ``quick``, then ``--set`` overrides.

    Args:
        defaults: ``{section: {key: value}}``.
        quick_sizes: The ``--quick`` values, same layout.
        quick: Apply ``quick_sizes``.
        overrides: Strings ``section.key=value``; the value is a Python literal (``3e-4``, ``(16, 32)``,
            ``'focal'``, read with ``ast.literal_eval``) or, failing that, a plain string.

    Returns:
        A fresh nested dict.

    Raises:
        SystemExit: For an override that is not ``section.key=value`` with a known section.
    """
    import ast
    import copy

    cfg = copy.deepcopy(defaults)
    if quick:
        for section, values in quick_sizes.items():
            cfg[section].update(values)
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in cfg:
            raise SystemExit(f"--set {item!r}: expected section.key=value with section in {sorted(cfg)}")
        try:
            cfg[section][name] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            cfg[section][name] = raw.strip()
    return cfg
