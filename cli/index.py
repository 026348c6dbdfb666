"""``moment-search index ...``: build, extend, shrink, describe and check an index."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DEFAULT_INDEX, PhaseProgress, console, print_json, user_errors

app = typer.Typer(help="Build and maintain a moment index.", no_args_is_help=True)

INDEX_HELP = "Index directory."
WAIT_HELP = "Seconds to wait for another process changing the index (default: fail at once)."
KIND_HELP = "auto | flat | ivf | ivfpq | hnsw (auto decides from size and memory budget)."


def build_config(**options):
    """A BuildConfig from CLI options (imported lazily: torch loads only when needed)."""
    from moment_search.indexer.build import BuildConfig

    return BuildConfig(**{k: v for k, v in options.items() if v is not None})


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
    out: Path = typer.Option(DEFAULT_INDEX, help="Index directory to create."),
    model: Path = typer.Option(None, help="FVMR checkpoint directory (default: the shipped one)."),
    index: str = typer.Option("auto", help=KIND_HELP),
    memory_budget: str = typer.Option("4G", help="Memory budget of the FAISS index (e.g. 4G)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N."),
    split: str = typer.Option(None, help="Index only the videos of this annotation split."),
    feature_rate: float = typer.Option(None, help="Features per second (default: the model's)."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog (default: SQLite)."),
    keep_embeddings: bool = typer.Option(False, help="Keep raw embeddings after the build."),
    resume: bool = typer.Option(False, help="Continue an interrupted build in OUT."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
    backend: str = typer.Option("faiss", help="faiss (files in OUT) | milvus (a collection)."),
    milvus_uri: str = typer.Option(None, help="With --backend milvus: a milvus-lite file "
                                   "(default OUT/milvus.db) or a server URI "
                                   "(http://host:19530)."),
    query_encoder: bool = typer.Option(True, help="Export the model's query side to ONNX "
                                       "into OUT/encoder, so queries run without PyTorch."),
    ray: str = typer.Option(None, "--ray", help="Embed the proposals on a Ray cluster: 'auto' "
                            "(RAY_ADDRESS, a cluster started on this machine, else a local one) "
                            "or its address (host:6379, ray://host:10001). Needs the ray extra "
                            "of moment-search."),
    ray_workers: int = typer.Option(None, help="With --ray: embedding actors (default: one per "
                                    "GPU of the cluster, else its CPUs less one)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Embed every proposal of every video into a vector index (resumable)."""
    from moment_search.indexer.build import build_index

    config = build_config(index_kind=index, memory_budget=memory_budget, device=device,
                          split=split, feature_rate=feature_rate, catalog_url=catalog,
                          keep_embeddings=keep_embeddings, wait=wait, backend=backend,
                          milvus_uri=milvus_uri, query_encoder=query_encoder)
    with user_errors():
        embed = None if ray is None else _ray_embedding(ray, ray_workers, device)
        progress = PhaseProgress()
        with progress.bar:
            result = build_index(corpus, out, model, config, resume=resume, progress=progress,
                                 embed=embed)
    report(result, as_json)


def _ray_embedding(address: str, workers: int | None, device: str):
    """The Ray embedding of ``--ray``; fails at once when Ray is not installed."""
    from moment_search.indexer.ray_build import RayBuildConfig, RayShardEmbedding

    from moment_search.ray_cluster import import_ray

    import_ray()
    return RayShardEmbedding(RayBuildConfig(address=address, workers=workers, device=device))


@app.command()
def add(
    corpus: Path = typer.Argument(..., help="Corpus directory with the new videos."),
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    split: str = typer.Option(None, help="Only the videos of this annotation split."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add the corpus videos that the index does not hold yet, bring removed ones back
    (re-embedded), and finish an interrupted add."""
    from moment_search.indexer.edit import add_videos

    config = build_config(split=split, catalog_url=catalog, wait=wait)
    with user_errors():
        progress = PhaseProgress()
        with progress.bar:
            result = add_videos(corpus, index_dir, config, progress)
    report(result, as_json)


@app.command()
def update(
    video_ids: list[str] = typer.Argument(..., help="Indexed video ids to re-embed."),
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    corpus: Path = typer.Option(None, help="Corpus directory to read the videos from (default: "
                                "the feature files the index recorded)."),
    split: str = typer.Option(None, help="With --corpus: the annotation split to read."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-embed indexed videos whose features changed, in place (all or nothing: every id must
    be indexed; a removed video comes back with 'index add')."""
    from moment_search.indexer.reembed import update_videos

    config = build_config(split=split, catalog_url=catalog, wait=wait)
    with user_errors():
        progress = PhaseProgress()
        with progress.bar:
            result = update_videos(index_dir, video_ids, corpus, config, progress)
    report(result, as_json)


@app.command()
def remove(
    video_ids: list[str] = typer.Argument(..., help="Video ids to remove."),
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
) -> None:
    """Remove videos (all or nothing: every id must be in the index)."""
    from moment_search.indexer.edit import remove_videos

    with user_errors():
        removed = remove_videos(index_dir, video_ids, catalog, wait)
    console.print(f"removed {len(set(video_ids))} video(s), {removed} proposals")


@app.command()
def info(
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Model, index type and parameters, counts and size of an index (exit 1 when damaged)."""
    from moment_search.indexer.integrity import index_summary

    with user_errors():
        summary = index_summary(index_dir, catalog)
    if as_json:
        print_json(summary)
    else:
        for key, value in summary.items():
            if key not in ("problems", "notes"):
                console.print(f"[bold]{key}[/]: {value}", highlight=False)
        for note in summary["notes"]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        for problem in summary["problems"]:
            console.print(f"[red]problem:[/] {problem}", highlight=False)
    if summary["problems"]:
        raise typer.Exit(1)


@app.command()
def verify(
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    sample: int = typer.Option(8, help="Videos re-embedded to check the stored vectors."),
) -> None:
    """Check that FAISS, the Parquet metadata and the catalog agree, every file is as written,
    and a sample of stored vectors matches fresh embeddings (exit 1 on a problem)."""
    from moment_search.indexer.verify import verify_index

    with user_errors():
        problems = verify_index(index_dir, catalog, sample_videos=sample)
    for problem in problems:
        console.print(f"[red]problem:[/] {problem}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print("ok: FAISS, Parquet metadata and catalog agree; checksums match; "
                  f"{sample} sampled videos re-embed to their stored vectors")


@app.command()
def repair(
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
    rebuild_catalog: bool = typer.Option(False, help="Restore a missing or empty catalog from "
                                         "the index's newest catalog snapshot, after checking "
                                         "its files' sha256."),
) -> None:
    """Return an index to its last published state after a crash: delete files an interrupted
    writer left and drop pending videos (add them again with 'index add'); with
    --rebuild-catalog, restore a lost catalog."""
    from moment_search.indexer.recover import rebuild_catalog as rebuild
    from moment_search.indexer.repair import repair_index

    with user_errors():
        notes = rebuild(index_dir, catalog, wait) if rebuild_catalog else \
            repair_index(index_dir, catalog, wait)
    for note in notes:
        console.print(note, highlight=False)


@app.command(name="export-encoder")
def export_encoder(
    index_dir: Path = typer.Option(DEFAULT_INDEX, "--index", help=INDEX_HELP),
    corpus: Path = typer.Option(None, help="A corpus whose val (else all) sentences the export "
                                "is checked on, besides built-in ones."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    force: bool = typer.Option(False, help="Export again even when the index has its encoder."),
    wait: float = typer.Option(0.0, help=WAIT_HELP),
) -> None:
    """Give an index its ONNX query encoder (INDEX/encoder), so queries run without PyTorch:
    indexes built before indexes carried one answer through PyTorch until then."""
    from moment_search.indexer.query_encoder import export_index_encoder

    with user_errors():
        meta = export_index_encoder(index_dir, catalog, corpus, wait, force)
    if meta is None:
        console.print(f"{index_dir} already has its query encoder (--force exports it again)")
        return
    check = meta.check["fp32"]
    console.print(f"exported the query encoder into {index_dir}/encoder: ONNX vs PyTorch "
                  f"cosine >= {check['min_cosine']:.6f} on {check['n']} sentences", highlight=False)
