"""The corpus-scale benchmark's report: its data sentence and defaults check, the Markdown and the
latency-vs-size plot."""

from __future__ import annotations

from pathlib import Path

from . import report


def data_description(data) -> str:
    """The report's sentence on the data of a :class:`SyntheticEmbeddings` generator."""
    return (f"Synthetic clustered embeddings, not uniform noise: D={data.dim}, a two-level "
            f"Gaussian mixture on the unit sphere ({data.n_topics} topics with 1/sqrt(rank) "
            f"frequencies -> videos at spread {data.video_spread} -> {data.per_video} proposals "
            f"per video at spread {data.proposal_spread}, ids contiguous per video); queries lie "
            f"near unseen videos of the same topics (spread {data.query_spread}). Inner-product "
            f"search; ground truth by exhaustive search (faiss.contrib).")


def defaults_check(rows: list[dict], target: float) -> list[dict]:
    """Per measured IVF/HNSW index: the smallest swept value reaching recall@100 ``target``."""
    checks = []
    for row in rows:
        sweep = row.get("sweep") or []
        if not sweep:
            continue
        enough = [s["value"] for s in sweep if s["recall_at_100"] >= target]
        param = sweep[0]["param"]
        checks.append({"n": row["n"], "kind": row["kind"], "param": param,
                       "default": row["params"].get(param), "nlist": row["params"].get("nlist"),
                       "smallest_meeting_target": min(enough) if enough else None,
                       "best_recall_at_100": max(s["recall_at_100"] for s in sweep)})
    return checks


RESULT_COLUMNS = ("n", "kind", "built_kind", "build_s", "bytes_per_vector", "recall_at_10",
                  "recall_at_100", "single_p50_ms", "single_p95_ms", "batch_p50_ms",
                  "batch_p95_ms", "threads")
RESULT_HEADERS = ("n", "kind", "built as", "build s", "bytes/vec", "R@10", "R@100",
                  "1-query p50 ms", "1-query p95 ms", "batch-32 p50 ms/q", "batch-32 p95 ms/q",
                  "threads")


def to_markdown(result: dict) -> str:
    """The human-readable report: data, machine, the main table, sweeps, skips."""
    ok = [r for r in result["results"] if r["status"] == "ok"]
    skipped = [r for r in result["results"] if r["status"] != "ok"]
    parts = [f"# Corpus-scale FAISS benchmark ({result['preset']} preset)", "",
             result["data_description"], "", report.machine_markdown(result["machine"]), "",
             f"Recall is measured against exact search on {result['config']['n_queries']} "
             f"queries before any timing; k = {result['k']}. Latency is per query (batch "
             f"latency = batch time / 32). Build = train + add, data generation excluded.", "",
             report.markdown_table(ok, RESULT_COLUMNS, RESULT_HEADERS), ""]
    parts += ["## Parameters used (the indexer's choice and its reason)", "",
              report.markdown_table(ok, ("n", "kind", "built_kind", "params", "reason"),
                                    ("n", "kind", "built as", "params", "reason")), ""]
    sweeps = [{"n": r["n"], "kind": r["kind"], **s} for r in ok for s in r.get("sweep", [])]
    if sweeps:
        parts += ["## Recall vs nprobe / efSearch", "", report.markdown_table(
            sweeps, ("n", "kind", "param", "value", "recall_at_10", "recall_at_100",
                     "per_query_ms"), ("n", "kind", "param", "value", "R@10", "R@100",
                                       "batch-32 ms/q")), ""]
        parts += ["Smallest swept value reaching recall@100 >= "
                  f"{result['recall_target']} vs the indexer's default:", "",
                  report.markdown_table(result["defaults_check"], (
                      "n", "kind", "nlist", "param", "default", "smallest_meeting_target",
                      "best_recall_at_100")), ""]
    if skipped:
        parts += ["## Skipped", ""] + [f"- n={r['n']:,} {r['kind']}: {r['skip_reason']}"
                                       for r in skipped] + [""]
    parts.append(f"Total run time {result['elapsed_s']:.0f} s.")
    return "\n".join(parts)


def plot_latency(result: dict, path: Path) -> Path:
    """latency_vs_size.png: p50 latency vs corpus size, one line per kind, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    ok = [r for r in result["results"] if r["status"] == "ok"]
    for axis, column, title in ((axes[0], "single_p50_ms", "single query"),
                                (axes[1], "batch_p50_ms", "batch of 32 (per query)")):
        for kind in dict.fromkeys(r["kind"] for r in ok):
            points = sorted((r["n"], r[column]) for r in ok if r["kind"] == kind)
            axis.plot(*zip(*points, strict=True), marker="o", label=kind)
        axis.set(xscale="log", yscale="log", xlabel="vectors in the index",
                 title=f"p50 latency, {title}")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("milliseconds per query")
    if ok:
        axes[0].legend()
    figure.suptitle(f"FAISS search latency vs corpus size (D=128, k={result['k']}, "
                    f"FAISS threads={result['machine']['faiss_threads']})")
    try:
        return report.save_figure(figure, path)
    finally:
        plt.close(figure)


def write_outputs(result: dict, out_dir: Path) -> dict[str, Path]:
    """Write corpus_scale.json, corpus_scale.md and latency_vs_size.png into ``out_dir``."""
    return {"json": report.write_json(out_dir / "corpus_scale.json", result),
            "markdown": report.write_markdown(out_dir / "corpus_scale.md", to_markdown(result)),
            "plot": plot_latency(result, out_dir / "latency_vs_size.png")}
