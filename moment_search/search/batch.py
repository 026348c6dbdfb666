"""Batch search: read a file of queries, answer them in batches, write corpus predictions."""

from __future__ import annotations

import json
from pathlib import Path

from ..eval.predictions import write_corpus_predictions
from .searcher import Moment, Searcher


def read_query_file(path: str | Path) -> list[tuple[str, str]]:
    """``(qid, text)`` pairs from a ``.txt`` (one sentence a line; qid = line number) or a
    ``.jsonl`` file (objects with ``query`` and optionally ``qid``).

    Raises:
        ValueError: an empty file, a malformed or empty line (names file and line).
    """
    path = Path(path)
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                pairs.append(_parse_query_line(path, line_no, line))
    if not pairs:
        raise ValueError(f"{path}: no queries")
    return pairs


def _parse_query_line(path: Path, line_no: int, line: str) -> tuple[str, str]:
    if path.suffix != ".jsonl":
        return str(line_no), line.strip()
    try:
        record = json.loads(line)
        text = record["query"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}, line {line_no}: expected a JSON object with a 'query' "
                         f"sentence ({e})") from e
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{path}, line {line_no}: empty query")
    return str(record.get("qid", line_no)), text


def search_file(searcher: Searcher, path: str | Path, k: int = 100, batch_size: int = 64,
                **options) -> dict[str, list[Moment]]:
    """Answer every query of a file, ``batch_size`` sentences per FAISS call."""
    pairs = read_query_file(path)
    results: dict[str, list[Moment]] = {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        answers = searcher.search_many([text for _, text in chunk], k=k, **options)
        results.update({qid: moments for (qid, _), moments in zip(chunk, answers, strict=True)})
    return results


def write_predictions(path: str | Path, results: dict[str, list[Moment]]) -> None:
    """Corpus predictions (``{"qid", "pred_moments": [[vid, st, ed, score], ...]}``)."""
    write_corpus_predictions(path, {
        qid: [(m.video_id, m.start_s, m.end_s, m.score) for m in moments]
        for qid, moments in results.items()})
