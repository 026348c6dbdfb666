"""``moment-search index ...``: build, extend, shrink, describe and check an index."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .common import console, print_json, user_errors

app = typer.Typer(help="Build and maintain a moment index.", no_args_is_help=True)

KIND_HELP = "auto | flat | ivf | ivfpq | hnsw (auto decides from size and memory budget)."


def build_config(**options):
    """A BuildConfig from CLI options (imported lazily: torch loads only when needed)."""
    from moment_search.indexer.build import BuildConfig

    return BuildConfig(**{k: v for k, v in options.items() if v is not None})


class ShardProgress:
    """A rich progress bar over videos that also shows videos/s and proposals/s."""

    def __init__(self, total_videos: int | None):
        self.bar = Progress(TextColumn("[bold]embedding"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                            console=console, transient=True)
        self.task = self.bar.add_task("videos", total=total_videos, rate="")
        self.videos = self.proposals = 0

    def __call__(self, videos: int, proposals: int) -> None:
        self.videos += videos
        self.proposals += proposals
        elapsed = max(self.bar.tasks[0].elapsed or 1e-9, 1e-9)
        rate = f"{self.videos / elapsed:.0f} videos/s, {self.proposals / elapsed:.0f} proposals/s"
        self.bar.update(self.task, advance=videos, rate=rate)


def report(result, as_json: bool) -> None:
    """Print a BuildReport."""
    payload = {"index_dir": str(result.index_dir), "videos": result.n_videos,
               "proposals": result.n_proposals, "index": result.index_spec,
               "seconds": round(result.seconds, 2), "placement": result.placement,
               "shards_resumed": result.shards_skipped, "notes": result.notes}
    if as_json:
        print_json(payload)
        return
    console.print(f"indexed {result.n_videos} videos, {result.n_proposals} proposals in "
                  f"{result.seconds:.1f} s into {result.index_dir}")
    console.print(f"index: {result.index_spec}")
    for note in result.notes:
        console.print(note)


@app.command()
def build(
    corpus: Path = typer.Argument(..., help="Corpus directory (features/ + manifest/annotations)."),
    out: Path = typer.Option(..., help="Index directory to create."),
    model: Path = typer.Option(None, help="FVMR checkpoint directory (default: the shipped one)."),
    index: str = typer.Option("auto", help=KIND_HELP),
    memory_budget: str = typer.Option("4G", help="Memory budget of the FAISS index (e.g. 4G)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N."),
    split: str = typer.Option(None, help="Index only the videos of this annotation split."),
    feature_rate: float = typer.Option(None, help="Features per second (default: the model's)."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog (default: SQLite)."),
    keep_embeddings: bool = typer.Option(False, help="Keep raw embeddings after the build."),
    resume: bool = typer.Option(False, help="Continue an interrupted build in OUT."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Embed every proposal of every video into a FAISS index (resumable)."""
    from moment_search.indexer.build import build_index

    config = build_config(index_kind=index, memory_budget=memory_budget, device=device,
                          split=split, feature_rate=feature_rate, catalog_url=catalog,
                          keep_embeddings=keep_embeddings)
    with user_errors():
        progress = ShardProgress(None)
        with progress.bar:
            result = build_index(corpus, out, model, config, resume=resume, progress=progress)
    report(result, as_json)


@app.command()
def add(
    corpus: Path = typer.Argument(..., help="Corpus directory with the new videos."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory."),
    split: str = typer.Option(None, help="Only the videos of this annotation split."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add the corpus videos that the index does not hold yet."""
    from moment_search.indexer.build import add_videos

    with user_errors():
        progress = ShardProgress(None)
        with progress.bar:
            result = add_videos(corpus, index_dir, build_config(split=split, catalog_url=catalog),
                                progress)
    report(result, as_json)


@app.command()
def remove(
    video_ids: list[str] = typer.Argument(..., help="Video ids to remove."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
) -> None:
    """Remove videos (all or nothing: every id must be in the index)."""
    from moment_search.indexer.build import remove_videos

    with user_errors():
        removed = remove_videos(index_dir, video_ids, catalog)
    console.print(f"removed {len(video_ids)} video(s), {removed} proposals")


@app.command()
def info(
    index_dir: Path = typer.Option(..., "--index", help="Index directory."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Model, index type and parameters, counts and size of an index."""
    from moment_search.indexer.build import index_summary

    with user_errors():
        summary = index_summary(index_dir, catalog)
    if as_json:
        print_json(summary)
        return
    for key, value in summary.items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command()
def verify(
    index_dir: Path = typer.Option(..., "--index", help="Index directory."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
) -> None:
    """Check that FAISS, the Parquet metadata and the catalog agree (exit 1 on a mismatch)."""
    from moment_search.indexer.build import verify_index

    with user_errors():
        problems = verify_index(index_dir, catalog)
    for problem in problems:
        console.print(f"[red]mismatch:[/] {problem}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print("ok: FAISS, Parquet metadata and catalog agree")
