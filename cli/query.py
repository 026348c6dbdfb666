"""``moment-search query``: search an index for moments that match a sentence."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from .common import DEFAULT_INDEX, console, user_errors


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def moments_table(text: str, moments) -> Table:
    """A readable table of ranked moments."""
    table = Table(title=f"“{text}”")
    for name, justify in (("rank", "right"), ("video", "left"), ("moment", "left"),
                          ("score", "right"), ("stage", "left")):
        table.add_column(name, justify=justify)
    for m in moments:
        table.add_row(str(m.rank), m.video_id, f"{clock(m.start_s)}-{clock(m.end_s)}",
                      f"{m.score:.3f}", m.stage)
    return table


def query(
    text: str = typer.Argument(None, help="The sentence to search for."),
    index: Path = typer.Option(DEFAULT_INDEX, help="Index directory."),
    k: int = typer.Option(10, "-k", "--top-k", help="Moments to return."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines."),
    video: list[str] = typer.Option(None, help="Search only these videos (repeatable)."),
    nms: float = typer.Option(0.5, help="Temporal NMS IoU threshold within a video."),
    per_video: int = typer.Option(None, help="At most this many moments per video."),
    file: Path = typer.Option(None, help="Answer every query of a .txt or .jsonl file."),
    predictions: Path = typer.Option(None, help="With --file: write corpus predictions here."),
    rerank: str = typer.Option(None, help="Rerank the top videos with this model (pln)."),
    rerank_videos: int = typer.Option(10, help="M: videos of the fast path that get reranked."),
    rerank_weight: float = typer.Option(0.5, help="Fused = w * fast-path + (1 - w) * reranker."),
    rerank_model: Path = typer.Option(None, help="Reranker checkpoint (default: shipped)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N for the models."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
) -> None:
    """Search the index for the moments that best match a sentence."""
    from moment_search.search.batch import search_file, write_predictions
    from moment_search.search.searcher import Searcher

    with user_errors():
        if (text is None) == (file is None):
            raise ValueError("give either a query sentence or --file, not both or neither")
        searcher = Searcher.open(index, device=device, catalog_url=catalog)
        options = {"video_ids": video or None, "nms": nms, "per_video": per_video,
                   "rerank": rerank, "rerank_videos": rerank_videos,
                   "rerank_weight": rerank_weight}
        if rerank is not None:
            searcher.add_reranker(rerank, rerank_model)
        if file is not None:
            results = search_file(searcher, file, k=k, **options)
            if predictions is not None:
                write_predictions(predictions, results)
            console.print(f"answered {len(results)} queries"
                          + (f"; predictions written to {predictions}" if predictions else ""))
            return
        moments = searcher.search(text, k=k, **options)
    if as_json:
        for m in moments:
            typer.echo(json.dumps(m.to_dict()))
        return
    console.print(moments_table(text, moments))
    t = searcher.timings
    rerank_note = f", rerank {t.extra['rerank_ms']:.1f} ms" if "rerank_ms" in t.extra else ""
    console.print(f"text encoding {t.encode_ms:.1f} ms, search {t.search_ms:.1f} ms, "
                  f"NMS {t.post_ms:.1f} ms{rerank_note} over {searcher.n_proposals} proposals")
