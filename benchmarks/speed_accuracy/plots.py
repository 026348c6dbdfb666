"""The report's figures: speed vs accuracy (single video and corpus) and latency vs corpus size."""

from __future__ import annotations

from pathlib import Path

from ..report import save_figure


def _figure(columns: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(1, columns, figsize=(6.5 * columns, 4.5), squeeze=False)


def _scatter(axis, rows: list[dict], x: str, metrics: tuple[str, str], label: str) -> None:
    for metric, marker in zip(metrics, ("o", "s"), strict=True):
        axis.scatter([r[x] for r in rows], [r[metric] for r in rows], marker=marker, label=metric)
    for r in rows:
        axis.annotate(r[label], (r[x], r[metrics[0]]), textcoords="offset points",
                      xytext=(4, 4), fontsize=7)
    _log_axis(axis.xaxis, axis.set_xscale)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)


def _log_axis(which, set_scale) -> None:
    """A log scale labelled at its decades only (minor labels overlap)."""
    from matplotlib.ticker import NullFormatter

    set_scale("log")
    which.set_minor_formatter(NullFormatter())


def plot_speed_accuracy(report: dict, path: Path) -> Path:
    """Left: single-video ALL ms vs R1@IoU; right: corpus ms per query vs R10 / R100 @0.5."""
    plt, figure, axes = _figure(2)
    single, corpus = axes[0]
    _scatter(single, report["single_video"], "ALL_ms_median", ("R1@0.5", "R1@0.7"), "model")
    single.set_xlabel("ms per query per video (ALL, median, log)")
    single.set_ylabel("single-video recall (%)")
    single.set_title("One query, its own video")
    rows = [{**r, "short": r["label"].replace("FVMR index + ", "+")
             .replace(" on top ", " M=").replace(" videos", "")} for r in report["corpus"]["rows"]]
    _scatter(corpus, rows, "ms_p50", ("R10@0.5", "R100@0.5"), "short")
    corpus.set_xlabel("ms per query over the corpus (median, log)")
    corpus.set_ylabel("corpus recall (%)")
    corpus.set_title(f"One query, {report['corpus']['about']['videos']} videos")
    path = save_figure(figure, path)
    plt.close(figure)
    return path


def plot_scaling(scaling: dict, path: Path) -> Path:
    """Milliseconds per query vs videos (log-log): index, cascades, scans (extrapolated dashed)."""
    plt, figure, axes = _figure(1)
    axis = axes[0][0]
    videos = [p["videos"] for p in scaling["index"]]
    axis.plot(videos, [p["index_ms_composed"] for p in scaling["index"]], "o-",
              label="FVMR index")
    for name in scaling["cascade_ms"]:
        axis.plot(videos, [p[f"cascade_{name}_ms_composed"] for p in scaling["index"]], "s--",
                  label=f"FVMR index + {name} top {scaling['cascade_m'][name]}")
    for number, (name, curve) in enumerate(scaling["scan"].items()):
        color = f"C{3 + number}"
        measured = [p for p in curve if p["source"] == "measured"]
        axis.plot([p["videos"] for p in curve], [p["ms_p50"] for p in curve], ":", color=color)
        axis.plot([p["videos"] for p in measured], [p["ms_p50"] for p in measured], "D",
                  color=color, label=f"{name} on every video (measured; dotted: extrapolated)")
    _log_axis(axis.xaxis, axis.set_xscale)
    _log_axis(axis.yaxis, axis.set_yscale)
    axis.set_xlabel("videos in the corpus (log)")
    axis.set_ylabel("ms per query (median, log)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    path = save_figure(figure, path)
    plt.close(figure)
    return path
