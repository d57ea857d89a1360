"""Sentence pairs into the translation kind's canonical table: ``row``, ``text`` (source), ``target``.

``tatoeba`` reads the manythings.org / Tatoeba Anki files: one pair a line, ``source<TAB>target`` and
optionally a third attribution field, no header. ``tsv``, ``csv``, ``jsonl`` and ``parquet`` read the
source and target columns by name through the shared readers. Nothing is dropped: an empty side or a
malformed line stops the read naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqmodels.readers import ReaderError, ReadSpec, require_nonempty, check_text_file, detect_format, read_table

PAIR_FORMATS = ("tatoeba", "tsv", "csv", "jsonl", "parquet")


def read_pairs(path: str | Path, fmt: str = "tatoeba", source_col: str = "source", target_col: str = "target",
               encoding: str = "utf-8") -> pd.DataFrame:
    """``row``, ``text`` (source), ``target`` of every pair of ``path``, in file order."""
    if fmt not in PAIR_FORMATS:
        raise ReaderError(path, f"unknown pair format {fmt!r}; use one of {', '.join(PAIR_FORMATS)}")
    if fmt == "tatoeba":
        table, first_line = _read_tatoeba(Path(path), encoding), 1
    else:
        spec = ReadSpec(text_col=source_col, label_col=target_col, fmt=fmt, encoding=encoding)
        table = read_table(path, spec).rename(columns={"label": "target"})
        first_line = 2 if detect_format(path, fmt) in ("csv", "tsv") else 1
    require_nonempty(path, table, "text", source_col if fmt != "tatoeba" else "source", first_line)
    require_nonempty(path, table, "target", target_col if fmt != "tatoeba" else "target", first_line)
    return table


def _read_tatoeba(path: Path, encoding: str) -> pd.DataFrame:
    """Tab-separated ``source<TAB>target[<TAB>attribution]`` lines (blank lines skipped, not counted as pairs)."""
    check_text_file(path, encoding)
    rows, sources, targets = [], [], []
    with path.open("r", encoding=encoding, newline=None) as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise ReaderError(path, f"expected 'source<TAB>target' (optionally a third attribution field), "
                                        f"found {len(fields)} field(s)", line=number)
            rows.append(number - 1)
            sources.append(fields[0])
            targets.append(fields[1])
    if not rows:
        raise ReaderError(path, "the file has no sentence pairs")
    return pd.DataFrame({"row": rows, "text": sources, "target": targets})
