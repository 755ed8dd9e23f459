# Copyright (c) monai_gan_aug contributors. Licensed under the Apache License, Version 2.0.
"""Result tables of the downstream experiments: per-seed values -> mean ± std, JSON + Markdown.

Every downstream experiment of this package (segmentation, classification, the thyroid protocol; the detection
table of :mod:`monai_gan_aug.evaluation.detection` uses the same summary format) repeats each configuration over
several seeds and reports ``mean ± std`` (DF-GAN, Table 1: mean ± standard error; GA-UNet, Table III: ± 95 %
interval). A table is a plain dict, written as ``<stem>.json`` and ``<stem>.md``::

    {"title": str, "created": ISO time, "config": {...}, "notes": [str, ...],
     "fields": [{"key": "n_real", "title": "Real"}, ...],          # descriptive columns (left)
     "columns": [{"key": "dice", "title": "Dice"}, ...],           # metric columns (mean ± std)
     "rows": [{"label": str, "key": str, "fields": {...}, "metrics": {key: SUMMARY}, "runs": [...]}, ...]}

``SUMMARY`` is :func:`summarize`'s ``{"mean", "std", "sem", "n", "values"}`` (sample standard deviation,
``ddof=1``; ``std = 0`` for a single value; non-finite values are kept in ``values`` but left out of the statistics),
the same keys as the detection table, so one reader handles every table. Columns may also be plain metric keys
(strings), as in the detection table.

Long experiments can resume: :func:`save_run_record` writes one run's result together with its configuration and
:func:`load_run_record` returns it only when the configuration is identical.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_gan_aug.utils.misc import json_safe  # re-exported: the tables' JSON conversion

__all__ = [
    "aggregate_runs",
    "format_summary",
    "json_safe",
    "load_run_record",
    "make_table",
    "pivot_markdown",
    "save_run_record",
    "summarize",
    "table_markdown",
    "write_table",
]


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def summarize(values: Sequence[Any]) -> dict[str, Any]:
    """Mean, sample standard deviation (``ddof=1``), standard error and count of the finite entries of ``values``.

    Args:
        values: one value per seed; ``None`` / ``nan`` / ``inf`` entries are kept in ``values`` (as ``None``) but
            left out of the statistics.

    Returns:
        ``{"mean", "std", "sem", "n", "values"}``; ``std = sem = 0`` for one finite value, everything ``None`` but
        ``n = 0`` for none.

    Raises:
        TypeError: ``values`` is not a sequence (a single number, a string).
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"summarize: `values` must be a sequence of numbers (one per seed), got {type(values).__name__}.")
    finite = [f for f in (_finite(v) for v in values) if f is not None]
    n = len(finite)
    mean = float(np.mean(finite)) if n else None
    std = float(np.std(finite, ddof=1)) if n > 1 else (0.0 if n else None)
    sem = std / math.sqrt(n) if n and std is not None else None
    return {"mean": mean, "std": std, "sem": sem, "n": n, "values": [_finite(v) for v in values]}


def aggregate_runs(runs: Sequence[Mapping[str, Any]], keys: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Summaries per metric over runs (one dict of metric values per seed).

    Args:
        runs: per-seed metric dicts, e.g. ``[{"dice": 0.5, "miou": 0.4}, {"dice": 0.6, "miou": 0.45}]``.
        keys: metrics to aggregate; default every key of any run, in first-seen order. A run lacking a key counts
            as a missing (``None``) value.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("aggregate_runs: `runs` is empty; give one metric dict per seed.")
    if keys is None:
        keys = list(dict.fromkeys(k for run in runs for k in run))
    return {k: summarize([run.get(k) for run in runs]) for k in keys}


def format_summary(summary: Mapping[str, Any] | None, digits: int = 3, spread: str = "std") -> str:
    """``"0.512 ± 0.021"`` (``spread`` = ``"std"`` or ``"sem"``), just the mean for one value, ``"n/a"`` for none."""
    if spread not in ("std", "sem"):
        raise ValueError(f"spread must be 'std' or 'sem', got {spread!r}.")
    if not summary or summary.get("mean") is None:
        return "n/a"
    if summary.get("n", 0) > 1 and summary.get(spread) is not None:
        return f"{summary['mean']:.{digits}f} ± {summary[spread]:.{digits}f}"
    return f"{summary['mean']:.{digits}f}"


def _columns(columns: Any) -> list[dict[str, str]]:
    if columns is None:
        return []
    if isinstance(columns, Mapping):
        return [{"key": str(k), "title": str(t)} for k, t in columns.items()]
    out = []
    for c in columns:
        if isinstance(c, str):
            out.append({"key": c, "title": c})
        elif isinstance(c, Mapping) and "key" in c:
            out.append({"key": str(c["key"]), "title": str(c.get("title", c["key"]))})
        elif isinstance(c, (list, tuple)) and len(c) == 2:
            out.append({"key": str(c[0]), "title": str(c[1])})
        else:
            raise TypeError(f"a column must be a key, a (key, title) pair or a {{'key', 'title'}} dict, got {c!r}.")
    return out


def make_table(
    title: str,
    columns: Any,
    rows: Sequence[Mapping[str, Any]],
    fields: Any = None,
    config: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a table dict (see the module docstring) and make it JSON-safe.

    Args:
        title: first line of the Markdown.
        columns: metric columns: keys, ``(key, title)`` pairs, ``{"key", "title"}`` dicts or a ``{key: title}`` dict.
        rows: dicts with ``label``, ``metrics`` (``{key: summary}``) and optionally ``fields``, ``key``, ``runs``.
        fields: descriptive columns shown left of the metrics (same forms as ``columns``); default: only ``label``.
        config: settings of the experiment (seeds, epochs, ...).
        notes: lines printed under the title.
        extra: more top-level entries (e.g. ``test`` counts).

    Raises:
        ValueError: a row without ``metrics``.
    """
    for i, row in enumerate(rows):
        if "metrics" not in row:
            raise ValueError(f"make_table: row {i} ({row.get('label')!r}) has no 'metrics'.")
    table = {
        "title": str(title),
        "created": datetime.datetime.now(datetime.UTC).isoformat(),
        "config": dict(config or {}),
        "notes": [str(n) for n in notes],
        "fields": _columns(fields),
        "columns": _columns(columns),
        "rows": [dict(r) for r in rows],
    }
    table.update(extra)
    return json_safe(table)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table_markdown(table: Mapping[str, Any], digits: int = 3, spread: str = "std") -> str:
    """A table dict as Markdown: title, notes, then one line per row (fields, then ``mean ± spread`` per column)."""
    fields = _columns(table.get("fields"))
    columns = _columns(table.get("columns"))
    if not columns:
        keys = list(dict.fromkeys(k for row in table.get("rows", []) for k in row.get("metrics", {})))
        columns = _columns(keys)
    head = [f["title"] for f in fields] if fields else ["Training data"]
    header = head + [c["title"] for c in columns]
    lines = [str(table.get("title", "")), ""]
    for note in table.get("notes", []):
        lines += [str(note), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(head) + [":---:"] * len(columns)) + "|"]
    for row in table.get("rows", []):
        left = [_cell(row.get("fields", {}).get(f["key"])) for f in fields] if fields else [_cell(row.get("label"))]
        cells = left + [format_summary(row.get("metrics", {}).get(c["key"]), digits, spread) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pivot_markdown(
    table: Mapping[str, Any],
    metric: str,
    row_field: str,
    column_field: str,
    digits: int = 3,
    spread: str = "std",
    title: str | None = None,
) -> str:
    """One metric as a grid: rows by the value of ``row_field``, columns by ``column_field`` (DF-GAN Table 1 layout:
    rows = classic augmentation no / yes, columns = "50 R", "50 R + 50 S", ...). Rows and columns keep their order
    of first appearance; a missing combination is ``-``.

    Raises:
        ValueError: ``metric`` is in no row.
    """
    rows = list(table.get("rows", []))
    if not any(metric in r.get("metrics", {}) for r in rows):
        raise ValueError(f"pivot_markdown: metric {metric!r} is in no row of {table.get('title')!r}.")
    row_vals = list(dict.fromkeys(_cell(r.get("fields", {}).get(row_field)) for r in rows))
    col_vals = list(dict.fromkeys(_cell(r.get("fields", {}).get(column_field)) for r in rows))
    grid: dict[tuple[str, str], str] = {}
    for r in rows:
        f = r.get("fields", {})
        key = (_cell(f.get(row_field)), _cell(f.get(column_field)))
        grid.setdefault(key, format_summary(r.get("metrics", {}).get(metric), digits, spread))
    titles = {f["key"]: f["title"] for f in _columns(table.get("fields"))}
    metric_title = {c["key"]: c["title"] for c in _columns(table.get("columns"))}.get(metric, metric)
    lines = [title or f"{metric_title} by {titles.get(row_field, row_field)} and {titles.get(column_field, column_field)}", ""]
    lines.append("| " + " | ".join([titles.get(row_field, row_field)] + col_vals) + " |")
    lines.append("|" + "|".join(["---"] + [":---:"] * len(col_vals)) + "|")
    for rv in row_vals:
        lines.append("| " + " | ".join([rv] + [grid.get((rv, cv), "-") for cv in col_vals]) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    table: Mapping[str, Any],
    out_dir: str | os.PathLike,
    stem: str,
    markdown: str | None = None,
    digits: int = 3,
) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.json`` and ``<out_dir>/<stem>.md`` (``markdown`` or :func:`table_markdown`).

    Returns:
        The two paths.
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"{stem}.json", out / f"{stem}.md"
    jpath.write_text(json.dumps(json_safe(table), indent=1))
    mpath.write_text(markdown if markdown is not None else table_markdown(table, digits))
    return jpath, mpath


def save_run_record(path: str | os.PathLike, config: Mapping[str, Any], result: Mapping[str, Any]) -> Path:
    """Write one run's ``result`` with the ``config`` that produced it (JSON), for :func:`load_run_record`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps({"config": json_safe(config), "result": json_safe(result)}, indent=1))
    os.replace(tmp, p)
    return p


def load_run_record(path: str | os.PathLike, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The result saved at ``path`` when it was produced with exactly ``config`` (after :func:`json_safe`), else
    ``None`` (no file, unreadable file, other settings)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        record = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("config") != json_safe(config):
        return None
    result = record.get("result")
    return result if isinstance(result, dict) else None
