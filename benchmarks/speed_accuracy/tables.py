"""The report's Markdown: the single-video, corpus and scaling tables, the headline, checks."""

from __future__ import annotations

from ..report import machine_markdown, markdown_table

SINGLE_COLUMNS = ["model", "TE_ms_median", "TE_ms_p95", "CML_ms_median", "CML_ms_p95",
                  "NMS_ms_median", "ALL_ms_median", "ALL_ms_p95", "R1@0.3", "R1@0.5", "R1@0.7",
                  "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
SINGLE_HEADERS = ["model", "TE p50", "TE p95", "CML p50", "CML p95", "NMS p50", "ALL p50",
                  "ALL p95", "R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"]
CORPUS_COLUMNS = ["label", "videos_scored_per_query", "ms_p50", "ms_p95", "speedup_vs_scan",
                  "R1@0.5", "R10@0.5", "R100@0.5", "R1@0.7", "R10@0.7", "R100@0.7"]
CORPUS_HEADERS = ["strategy", "videos scored / query", "ms p50", "ms p95", "x faster than the scan",
                  "R1@0.5", "R10@0.5", "R100@0.5", "R1@0.7", "R10@0.7", "R100@0.7"]


def with_speedups(rows: list[dict]) -> list[dict]:
    """Each row plus ``speedup_vs_scan``: the p50 of the scan it is compared with over its own
    p50 (a cascade: its reranker's scan; the index: the first scan)."""
    scans = {r["reranker"]: r["ms_p50"] for r in rows if r["strategy"] == "scan"}
    first = next(iter(scans.values()), None)
    out = []
    for r in rows:
        scan = scans.get(r["reranker"]) if "reranker" in r else first
        out.append({**r, "speedup_vs_scan": scan / r["ms_p50"] if scan else None})
    return out


def headline(rows: list[dict]) -> str:
    """One sentence per scanning model: how much faster the index and the cascade are, at what
    accuracy."""
    index = next(r for r in rows if r["strategy"] == "index")
    lines = []
    for scan in (r for r in rows if r["strategy"] == "scan"):
        cascades = [r for r in rows if r.get("reranker") == scan["reranker"]
                    and r["strategy"] == "cascade"]
        best = max(cascades, key=lambda r: r["R10@0.5"], default=None)
        text = (f"**{scan['reranker']}**: the FVMR index answers a query over the corpus in "
                f"{index['ms_p50']:.1f} ms (p50), {scan['ms_p50'] / index['ms_p50']:.0f}x faster "
                f"than {scan['reranker']} scanning every video ({scan['ms_p50']:.0f} ms), at "
                f"R10@0.5 {index['R10@0.5']:.1f} vs {scan['R10@0.5']:.1f} and R100@0.5 "
                f"{index['R100@0.5']:.1f} vs {scan['R100@0.5']:.1f}.")
        if best:
            text += (f" The most accurate cascade ({scan['reranker']} on the top {best['M']} "
                     f"videos) takes {best['ms_p50']:.0f} ms "
                     f"({scan['ms_p50'] / best['ms_p50']:.1f}x faster than the scan) at R10@0.5 "
                     f"{best['R10@0.5']:.1f}.")
        lines.append(text)
    return "\n\n".join(lines)


def scaling_rows(scaling: dict) -> list[dict]:
    """One row per corpus size: index measurements, composed latencies, scan points."""
    rows = []
    for point in scaling["index"]:
        row = dict(point)
        for name, curve in scaling["scan"].items():
            scan = next(p for p in curve if p["videos"] == point["videos"])
            row[f"scan_{name}"] = scan["ms_p50"]
            row[f"scan_{name}_source"] = scan["source"]
            row[f"scan_{name}_ratio"] = scan["ms_p50"] / point["index_ms_composed"]
        rows.append(row)
    return rows


def scaling_table(scaling: dict) -> str:
    """Markdown of :func:`scaling_rows`."""
    columns = ["videos", "vectors", "index", "build_s", "recall_at_100", "search_ms_p50",
               "index_ms_composed"]
    headers = ["videos", "vectors", "index kind", "build s", "recall@100", "FAISS search p50 ms",
               "index ms/query (composed)"]
    for name in scaling["cascade_ms"]:
        columns.append(f"cascade_{name}_ms_composed")
        headers.append(f"+ {name} top {scaling['cascade_m'][name]} ms (composed)")
    for name in scaling["scan"]:
        columns += [f"scan_{name}", f"scan_{name}_source", f"scan_{name}_ratio"]
        headers += [f"{name} scan ms", "scan figure", "scan / index"]
    return markdown_table(scaling_rows(scaling), columns, headers)


def markdown(report: dict) -> str:
    """The whole report."""
    corpus = report["corpus"]
    parts = [
        f"# Speed-accuracy report ({report['preset']} preset)",
        f"Command: `{report['command']}`",
        f"## Single video ({report['split']} split, {report['single_video'][0]['queries']} "
        "queries)",
        "Milliseconds per query per video (TE text encoding, CML cross-modal scoring of the "
        "video's proposals, NMS ranking; ALL = their sum), median and p95 over the queries after "
        f"{report['preset_settings']['warmup']} warm-up queries; accuracy in percent.",
        markdown_table(report["single_video"], SINGLE_COLUMNS, SINGLE_HEADERS),
        f"## Corpus ({corpus['about']['videos']} videos, {corpus['about']['proposals']:,} "
        f"proposals; {corpus['about']['queries']} of {corpus['about']['of_queries']} queries)",
        "End-to-end milliseconds per query (text encoding included), k = "
        f"{corpus['about']['k']}; corpus R@k, IoU=m in percent (a hit needs the right video).",
        headline(corpus["rows"]),
        markdown_table(with_speedups(corpus["rows"]), CORPUS_COLUMNS, CORPUS_HEADERS),
        "## Scaling",
        report["scaling"]["note"],
        scaling_table(report["scaling"]),
        "## Checks passed before timing",
        "\n".join(f"- {check}" for check in report["checks"]),
        machine_markdown(report["machine"]) + f" Device: {report['device']}.",
    ]
    return "\n\n".join(parts)
