"""``moment-search benchmark ...``: the measured reports (each writes JSON + Markdown)."""

from __future__ import annotations

from pathlib import Path

import typer

from .benchmark_one_video import one_video_weight
from .benchmark_per_video import per_video_cv
from .common import console, from_options, named_paths, split_items, user_errors

app = typer.Typer(help="Run benchmarks; each writes JSON + Markdown (+ plots).",
                  no_args_is_help=True)


@app.command("corpus-scale")
def corpus_scale(
    out: Path = typer.Option(..., help="Report directory."),
    preset: str = typer.Option(None, help="small (~1 min) | medium (~10 min) | large."),
    sizes: str = typer.Option(None, help="Comma-separated sizes overriding the preset."),
    kinds: str = typer.Option(None, help="Comma-separated index kinds (default: all)."),
    threads: int = typer.Option(None, min=0, help="FAISS threads (0: all cores)."),
) -> None:
    """FAISS build time, bytes/vector, latency and recall vs exact, on synthetic embeddings."""
    from moment_search.benchmarks.corpus_scale import ScaleConfig, parse_size, run
    from moment_search.benchmarks.corpus_scale_report import to_markdown

    with user_errors():
        config = from_options(ScaleConfig, out=out, preset=preset,
                              sizes=split_items(sizes, parse_size), kinds=split_items(kinds),
                              threads=threads)
        typer.echo(to_markdown(run(config)))
    console.print(f"report written to {out}")


@app.command("real-corpus")
def real_corpus(
    data: Path = typer.Option(..., help="Corpus directory (features + annotations)."),
    out: Path = typer.Option(..., help="Report directory."),
    split: str = typer.Option(None, help="Split whose queries are timed."),
) -> None:
    """Index build time and TE / CML query latency on a real corpus, checked against brute force."""
    from moment_search.benchmarks.real_corpus import RealCorpusConfig, markdown, run

    with user_errors():
        typer.echo(markdown(run(from_options(RealCorpusConfig, data=data, out=out, split=split))))


@app.command("fvmr-accuracy")
def fvmr_accuracy(
    data: Path = typer.Option(..., help="Corpus directory (features + annotations)."),
    out: Path = typer.Option(..., help="Report directory."),
    model: list[str] = typer.Option(..., help="NAME=CHECKPOINT_DIR (repeatable)."),
    rerank: list[str] = typer.Option(None, help="NAME=CHECKPOINT_DIR of a reranker on top."),
    rerank_videos: str = typer.Option(None, help="Comma-separated M values for the rerank."),
    rerank_weight: float = typer.Option(None, min=0.0, max=1.0,
                                        help="Fused = w * fast-path score + (1 - w) * "
                                        "logit(reranker's probability) (default: each reranker "
                                        "checkpoint's own w)."),
    split: str = typer.Option(None, help="Split to evaluate."),
) -> None:
    """Single-video metrics with prior controls and corpus-search metrics per model."""
    from moment_search.benchmarks.fvmr_eval import AccuracyConfig, markdown, parse_models, run

    with user_errors():
        config = from_options(AccuracyConfig, data=data, out=out, models=parse_models(model),
                              rerankers=parse_models(rerank) if rerank else None,
                              rerank_videos=split_items(rerank_videos, int),
                              rerank_weight=rerank_weight, split=split)
        typer.echo(markdown(run(config)))


@app.command("lpnet-proposals")
def lpnet_proposals(
    model: Path = typer.Option(..., help="Trained LPNet checkpoint directory."),
    before: Path = typer.Option(..., help="Its starting point (train lpnet's OUT/init)."),
    out: Path = typer.Option(..., help="Report directory (JSON, Markdown, PNG)."),
    data: Path = typer.Option(None, help="Corpus whose ground-truth moments are drawn behind."),
    split: str = typer.Option(None, help="Annotation split of --data."),
) -> None:
    """Where LPNet's learnable proposals ended up: centres x widths before and after training."""
    from moment_search.benchmarks.lpnet_proposals import ProposalsConfig, run, to_markdown

    with user_errors():
        config = from_options(ProposalsConfig, model=model, before=before, out=out, data=data,
                              split=split)
        typer.echo(to_markdown(run(config)))
    console.print(f"report written to {out}")


# options shared by the report commands (typer reads them as defaults; sharing is safe)
CORPUS = typer.Option(..., help="Corpus directory (features + annotations).")
ANSWERED_SPLIT = typer.Option(None, help="Split whose queries are answered.")
MODELS = typer.Option(None, help="NAME[=CHECKPOINT_DIR],... (no DIR: the shipped checkpoint).")


@app.command("speed-accuracy")
def speed_accuracy(
    data: Path = CORPUS,
    out: Path = typer.Option(..., help="Report directory (report.json, report.md, plots)."),
    split: str = ANSWERED_SPLIT,
    models: str = MODELS,
    preset: str = typer.Option(None, help="small (a few minutes) | medium | large."),
    device: str = typer.Option(None, help="auto | cpu | cuda[:N] for the models and FAISS."),
) -> None:
    """TE / CML / ALL and accuracy per model, index vs cascade vs brute-force scan, scaling."""
    from moment_search.benchmarks.speed_accuracy.presets import get_preset, parse_models
    from moment_search.benchmarks.speed_accuracy.run import SpeedAccuracyConfig, run
    from moment_search.benchmarks.speed_accuracy.tables import markdown

    with user_errors():
        config = from_options(SpeedAccuracyConfig, data=data, out=out, split=split,
                              models=parse_models(models) if models else None,
                              preset=get_preset(preset) if preset else None, device=device)
        typer.echo(markdown(run(config)))


@app.command("devices")
def devices(
    data: Path = CORPUS,
    out: Path = typer.Option(..., help="Report directory (devices.json, devices.md)."),
    split: str = ANSWERED_SPLIT,
    models: str = MODELS,
    device_list: str = typer.Option(None, "--devices", help="Devices to compare."),
    sizes: str = typer.Option(None, help="Corpus sizes (videos) of the scan."),
) -> None:
    """Single-video steps and the cross-modal scan on each device (no FAISS needed)."""
    from moment_search.benchmarks.speed_accuracy.devices import DevicesConfig, markdown, run
    from moment_search.benchmarks.speed_accuracy.presets import parse_models

    with user_errors():
        config = from_options(DevicesConfig, data=data, out=out, split=split,
                              models=parse_models(models) if models else None,
                              devices=split_items(device_list), sizes=split_items(sizes, int))
        typer.echo(markdown(run(config)))


@app.command("corpus-eval")
def corpus_eval(
    data: Path = typer.Option(..., help="Corpus directory (features + annotations)."),
    out: Path = typer.Option(..., help="Report directory."),
    fvmr: Path = typer.Option(None, help="FVMR checkpoint composed over the (beta, gamma) grid "
                              "(its own corpus terms are replaced)."),
    model: Path = typer.Option(None, help="A search checkpoint evaluated as it is, instead of "
                               "a grid (default when --fvmr is not given: the shipped one)."),
    video_text: Path = typer.Option(None, help="Video-text checkpoint (for beta > 0)."),
    video_weights: str = typer.Option(None, help="Comma-separated beta values."),
    hub_weights: str = typer.Option(None, help="Comma-separated gamma values."),
    hub_bank: int = typer.Option(None, min=1, help="Training sentences of the hub bank."),
    positives: Path = typer.Option(None, help="MVMR positives file (e.g. charades_test_mvmr"
                                   ".json): adds multi-positive R@1/10/100 at IoU 0.5/0.7."),
    split: str = typer.Option(None, help="Split whose videos and sentences are searched."),
) -> None:
    """Corpus search, video retrieval and hubness per checkpoint (a (beta, gamma) grid or one)."""
    from moment_search.benchmarks.corpus_eval import CorpusEvalConfig, markdown, run

    with user_errors():
        config = from_options(CorpusEvalConfig, data=data, out=out, split=split, fvmr=fvmr,
                              model=model, video_text=video_text,
                              video_weights=split_items(video_weights, float),
                              hub_weights=split_items(hub_weights, float), hub_bank=hub_bank,
                              positives=positives)
        typer.echo(markdown(run(config)))
    console.print(f"report written to {out}")


@app.command("serve")
def serve_load(
    index: Path = typer.Option(..., help="Index directory to serve."),
    data: Path = typer.Option(..., help="Corpus whose sentences the clients send."),
    out: Path = typer.Option(..., help="Report directory (serve.json, serve.md, plot)."),
    clients: str = typer.Option(None, help="Comma-separated concurrent client counts."),
    duration: float = typer.Option(None, help="Seconds per point (at most 300)."),
    batches: str = typer.Option(None, help="Server --batch values to compare."),
    rerank: str = typer.Option(None, help="Also run every point with this reranker."),
    split: str = typer.Option(None, help="Split whose sentences are sent."),
) -> None:
    """Queries/s and p50/p95/p99 latency of 'moment-search serve' under concurrent clients."""
    from moment_search.benchmarks.serve_load import ServeLoadConfig, run

    with user_errors():
        run(from_options(ServeLoadConfig, index=index, data=data, out=out,
                         clients=split_items(clients, int), duration=duration,
                         batches=split_items(batches, int), rerank=rerank, split=split))
    console.print(f"report written to {out}")


@app.command("query-latency")
def query_latency(
    index: Path = typer.Option(..., help="Index directory (with its ONNX query encoder)."),
    data: Path = CORPUS,
    out: Path = typer.Option(..., help="Report directory (query_latency.json/.md/.png)."),
    split: str = typer.Option(None, help="Split whose sentences are searched."),
    encoders: str = typer.Option(None, help="Encoders compared, from pytorch,fp32,int8 (those "
                                 "the index lacks are skipped, and the report says so)."),
    cold_runs: int = typer.Option(None, min=1, help="Fresh processes timed per command."),
    warm_queries: int = typer.Option(None, min=1, help="Sentences timed warm per setting."),
    clients: str = typer.Option(None, help="Concurrent client counts for serve."),
    duration: float = typer.Option(None, min=1.0, max=300.0, help="Seconds per serve point."),
    skip_serve: bool = typer.Option(None, "--skip-serve",
                                    help="Leave out the served measurements."),
    baseline_index: Path = typer.Option(None, help="A flat index to run today's path on "
                                        "beside (PyTorch encoder, one served worker thread)."),
) -> None:
    """Cold CLI query, warm search and served throughput with each query encoder, in one run."""
    from moment_search.benchmarks.query_latency import LatencyConfig, write

    with user_errors():
        write(from_options(LatencyConfig, index=index, data=data, out=out, split=split,
                           encoders=split_items(encoders), cold_runs=cold_runs,
                           warm_queries=warm_queries, clients=split_items(clients, int),
                           duration=duration, skip_serve=skip_serve,
                           baseline_index=baseline_index))
    console.print(f"report written to {out}")


@app.command("relevance")
def relevance(
    work: Path = typer.Option(..., help="Where the train and val indexes are (built if absent)."),
    out: Path = typer.Option(..., help="Report directory."),
    data: Path = typer.Option(None, help="charades-sta-clip corpus directory."),
    annotations: Path = typer.Option(None, help="The annotations/ directory (TACoS, "
                                     "ActivityNet, Charades classes and CSV)."),
    model: Path = typer.Option(None, help="FVMR checkpoint (default: shipped)."),
    share: float = typer.Option(None, min=0.0, max=1.0,
                                help="Train sentences allowed under the no-good-match threshold."),
    write_model: Path = typer.Option(None, help="Write the calibration (relevance.json + "
                                     "relevance-bank.npy) into this checkpoint folder."),
) -> None:
    """Fit the relevance calibration on train, measure it on val (AUROC, false no-match rate)."""
    from moment_search.benchmarks.relevance import RelevanceConfig, run

    with user_errors():
        report = run(from_options(RelevanceConfig, work=work, out=out, data=data,
                                  annotations=annotations, model=model, share=share,
                                  write_model=write_model))
    val = report["val"]
    console.print(f"val AUROC {val['auroc']:.3f}, val sentences marked no good match "
                  f"{val['false_no_match_rate']:.1%}; report written to {out}")


@app.command("position-bias")
def position_bias(
    out: Path = typer.Option(..., help="Report directory."),
    data: Path = typer.Option(None, help="charades-sta-clip corpus directory."),
    model: Path = typer.Option(None, help="FVMR search checkpoint (default: shipped); a prior "
                               "it carries is dropped and fitted again."),
    strengths: str = typer.Option(None, help="Comma-separated candidate strengths of the prior, "
                                  "chosen among (with no prior) on train folds (those of "
                                  "--fold-model if given)."),
    write_model: Path = typer.Option(None, help="Write the checkpoint with the chosen prior here "
                                     "(replaces the folder: fit its relevance calibration again)."),
    fold_model: list[Path] = typer.Option(None, "--fold-model", help="A search checkpoint "
                                          "trained without one fold (repeat, two or more): the "
                                          "prior's strength is chosen on their held-out folds."),
    fold_data: list[Path] = typer.Option(None, "--fold-data", help="The fold corpus (`data "
                                         "fold`) each --fold-model holds out, in the same order."),
    fit_on: str = typer.Option(None, "--fit-on", help="With fold models: own-train (each "
                               "model's prior fitted on its own training sentences) or held-out "
                               "(on the other fold models' held-out predictions)."),
    write_fold_models: Path = typer.Option(None, help="Write each --fold-model with the prior "
                                           "its fold was measured with (the chosen strength) "
                                           "here, as fold-K (for cascade-cv --search)."),
) -> None:
    """Position/length bias of corpus search; fit the per-cell prior that removes it."""
    from moment_search.benchmarks.position_bias import PositionBiasConfig, run

    with user_errors():
        report = run(from_options(PositionBiasConfig, out=out, data=data, model=model,
                                  strengths=split_items(strengths, float), write_model=write_model,
                                  fold_models=tuple(fold_model) if fold_model else None,
                                  fold_data=tuple(fold_data) if fold_data else None,
                                  fit_on=fit_on, write_fold_models=write_fold_models))
    before, after, truth = (report["val"][k] for k in ("before", "after", "truth"))
    console.print(f"strength {report['chosen_strength']}; val top-1 starting at 0:00 "
                  f"{before['top1_start0']:.1f}% -> {after['top1_start0']:.1f}% (ground truth "
                  f"{truth['truth_start0']:.1f}%); report written to {out}")


@app.command("teachers")
def teachers(
    out: Path = typer.Option(..., help="Report directory."),
    config: list[str] = typer.Option(..., "--config", help="LABEL=FOLD_RUN,...|VAL_RUN,...: one "
                                     "teacher setting's fold and full-train checkpoints."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="Fold corpus directories "
                                         "(`data fold`), in the order of each setting's runs."),
    data: Path = typer.Option(None, help="Corpus directory whose val split is reported."),
) -> None:
    """FVMR's teacher settings: chosen on train folds, each measured on val."""
    from moment_search.benchmarks.teachers import TeachersConfig, run

    with user_errors():
        report = run(from_options(TeachersConfig, out=out, data=data,
                                  configs=tuple(config), fold_data=tuple(fold_data)))
    console.print(f"chosen: {report['chosen']}; report written to {out}")


@app.command("corpus-cv")
def corpus_cv(
    out: Path = typer.Option(..., help="Report directory."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="Fold corpus directories."),
    fvmr: list[Path] = typer.Option(..., "--fvmr", help="FVMR checkpoint of each fold."),
    video_text: list[Path] = typer.Option(..., "--video-text", help="Video-text checkpoint of "
                                          "each fold."),
    video_weights: str = typer.Option(None, help="Comma-separated beta values."),
    hub_weights: str = typer.Option(None, help="Comma-separated gamma values."),
) -> None:
    """Choose the corpus terms' weights (beta, gamma) by cross-validation on train folds."""
    from moment_search.benchmarks.corpus_cv import CorpusCVConfig, run

    with user_errors():
        report = run(from_options(CorpusCVConfig, out=out, fold_data=tuple(fold_data),
                                  fvmr=tuple(fvmr), video_text=tuple(video_text),
                                  video_weights=split_items(video_weights, float),
                                  hub_weights=split_items(hub_weights, float)))
    console.print(f"chosen: {report['chosen']}; report written to {out}")


@app.command("cascade-cv")
def cascade_cv(
    out: Path = typer.Option(..., help="Report directory."),
    reranker: str = typer.Option(..., help="The reranker's name (as `query --rerank`)."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="Fold corpus directories."),
    search: list[Path] = typer.Option(..., "--search", help="Search checkpoint of each fold "
                                      "(trained without it)."),
    fold_model: list[Path] = typer.Option(..., "--fold-model", help="Reranker checkpoint of "
                                          "each fold (trained without it)."),
    weights: str = typer.Option(None, help="Comma-separated candidate w (fast path's weight)."),
    videos: int = typer.Option(None, min=1, help="M: videos the reranker rescores."),
    model: Path = typer.Option(None, help="The reranker trained on all of train."),
    write_model: Path = typer.Option(None, help="Write --model with the chosen w stored here."),
) -> None:
    """Choose a reranker's cascade fusion weight by cross-validation on train folds."""
    from moment_search.benchmarks.cascade_cv import CascadeCVConfig, run

    with user_errors():
        report = run(from_options(CascadeCVConfig, out=out, reranker=reranker,
                                  fold_data=tuple(fold_data), search=tuple(search),
                                  fold_models=tuple(fold_model),
                                  weights=split_items(weights, float), videos=videos,
                                  model=model, write_model=write_model))
    console.print(f"chosen: w = {report['chosen_weight']}; report written to {out}")


@app.command("ensemble-cv")
def ensemble_cv(
    out: Path = typer.Option(..., help="Report directory."),
    fold_data: list[Path] = typer.Option(..., "--fold-data", help="Fold corpus directories."),
    member: list[str] = typer.Option(..., "--member", help="A candidate reranker and its "
                                     "checkpoint of each fold: NAME=DIR,DIR,... (repeat)."),
    write_model: Path = typer.Option(None, help="Write the chosen ensemble here."),
) -> None:
    """Choose the rerankers an ensemble averages by cross-validation on train folds."""
    from moment_search.benchmarks.ensemble_cv import EnsembleCVConfig, run

    with user_errors():
        members = tuple(named_paths(member, "member").items())
        report = run(from_options(EnsembleCVConfig, out=out, fold_data=tuple(fold_data),
                                  members=members, write_model=write_model))
    console.print(f"chosen: {' + '.join(report['chosen'])}; report written to {out}")


@app.command("ray")
def ray_throughput(
    videos: list[Path] = typer.Option(None, "--video", help="Video files to ingest, repeatable "
                                      "(default: the shared real videos)."),
    copies: int = typer.Option(None, help="Copies of each video, under distinct ids."),
    data: Path = typer.Option(None, help="Feature corpus whose index build is timed (default: "
                              "the shared charades-sta-clip features)."),
    out: Path = typer.Option(None, help="Report directory (default: reports/ray)."),
) -> None:
    """Frames/s of ingest and proposals/s of index build: single process vs 1 and 2 Ray
    workers on a local cluster (needs the ray extra of moment-search)."""
    from moment_search.benchmarks.ray_throughput import RayBenchConfig, run

    with user_errors():
        config = from_options(RayBenchConfig, videos=tuple(videos) if videos else None,
                              copies=copies, data=data, out=out)
        run(config)
    console.print(f"report written to {config.out}")


app.command("one-video-weight")(one_video_weight)
app.command("per-video-cv")(per_video_cv)
