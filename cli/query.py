"""``moment-search query``: search an index for moments that match a sentence."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from moment_search.errors import InputError
from moment_search.search import checks
from moment_search.search.localize import CORPUS_PER_VIDEO

from .common import DEFAULT_INDEX, PhaseProgress, RerankerName, console, name_of, user_errors


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss past an hour)."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


NO_GOOD_MATCH = ("no good match: the best relevance is under the calibrated threshold; these "
                 "moments are probably not what the sentence describes")


def moments_table(text: str, moments, quoted: bool = True,
                  no_good_match: bool | None = None) -> Table:
    """A readable table of ranked moments, titled with the (quoted) query; a relevance column
    when the index is calibrated, and a caption when the answer has no good match."""
    table = Table(title=f"“{text}”" if quoted else text,
                  caption=NO_GOOD_MATCH if no_good_match else None)
    calibrated = any(m.relevance is not None for m in moments)
    columns = [("rank", "right"), ("video", "left"), ("moment", "left"), ("score", "right"),
               *([("relevance", "right")] if calibrated else []), ("stage", "left")]
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for m in moments:
        relevance = [] if not calibrated else [
            "-" if m.relevance is None else f"{m.relevance:.2f}"]
        table.add_row(str(m.rank), m.video_id, f"{clock(m.start_s)}-{clock(m.end_s)}",
                      f"{m.score:.3f}", *relevance, m.stage)
    return table


def moment_line(moment, no_good_match: bool | None) -> dict:
    """One ``--json`` line: the moment's fields and, when the index is calibrated, the
    answer's ``no_good_match`` flag (the same on every line of the answer)."""
    fields = moment.to_dict()
    if no_good_match is not None:
        fields["no_good_match"] = no_good_match
    return fields


def check_nms(value: float) -> float:
    """Typer callback: ``--nms`` must lie in (0, 1] (``search.checks.check_nms``)."""
    try:
        return checks.check_nms(value)
    except InputError as e:
        raise typer.BadParameter(str(e)) from e


def print_answers(answers, as_json: bool) -> None:
    """Batch results: one table per query, or one JSON line per query."""
    for answer in answers:
        if as_json:
            typer.echo(json.dumps(answer.to_dict()))
        else:
            console.print(moments_table(f"{answer.qid}: {answer.text}", answer.moments,
                                        quoted=False, no_good_match=answer.no_good_match))


def check_batch_options(text, file, predictions, output_format: str) -> None:
    """One of TEXT / --file; --predictions and --format only with --file."""
    from moment_search.search.batch import PREDICTION_FORMATS

    if (text is None) == (file is None):
        raise InputError("give either a query sentence or --file, not both or neither")
    if predictions is not None and file is None:
        raise InputError("--predictions needs --file (a file of queries to answer)")
    if output_format not in PREDICTION_FORMATS:
        raise InputError(f"--format must be one of {', '.join(PREDICTION_FORMATS)}, "
                         f"got {output_format!r}")
    if output_format != "jsonl" and predictions is None:
        raise InputError(f"--format {output_format} applies to --predictions, which is not given")


def run_file(searcher, file: Path, k: int, options: dict, predictions: Path | None,
             output_format: str, as_json: bool) -> None:
    """``query --file``: answer every query; write predictions, or print the results."""
    from moment_search.search.batch import answer_file, corpus_video_ids, write_predictions

    progress = PhaseProgress()
    with progress.bar:
        answers = answer_file(searcher, file, k=k, progress=progress, **options)
    if predictions is None:
        print_answers(answers, as_json)
        return
    video_ids = corpus_video_ids(searcher) if output_format == "tvr" else None
    write_predictions(predictions, answers, output_format, video_ids)
    console.print(f"answered {len(answers)} queries; {output_format} predictions written to "
                  f"{predictions}")


def query(
    text: str = typer.Argument(None, help="The sentence to search for."),
    index: Path = typer.Option(DEFAULT_INDEX, help="Index directory."),
    k: int = typer.Option(10, "-k", "--top-k", help="Moments to return."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines (with --file: one "
                                 "{qid, query, moments} line per query)."),
    video: list[str] = typer.Option(None, help="Search only these videos (repeatable)."),
    nms: float = typer.Option(0.5, callback=check_nms,
                              help="Temporal NMS IoU threshold within a video, in (0, 1]."),
    per_video: int = typer.Option(None, help="At most this many moments per video (default: "
                                   f"{CORPUS_PER_VIDEO} over more than one video, fetching "
                                   "wider, then the held-back ones, where fewer than k are "
                                   "left; none within one video)."),
    file: Path = typer.Option(None, help="Answer every query of a .txt (a sentence a line) or "
                              ".jsonl (query/qid or TVR's desc/desc_id) file; prints the "
                              "results unless --predictions is given."),
    predictions: Path = typer.Option(None, help="With --file: write corpus predictions here "
                                     "instead of printing them."),
    output_format: str = typer.Option("jsonl", "--format", help="Predictions format: jsonl "
                                      "({qid, pred_moments} lines, what evaluate score reads) "
                                      "or tvr (TVRetrieval's VCMR submission .json)."),
    rerank: RerankerName = typer.Option(None, help="Rerank the top videos with this model."),
    rerank_videos: int = typer.Option(10, help="M: videos of the fast path that get reranked."),
    rerank_weight: float = typer.Option(None, min=0.0, max=1.0,
                                        help="Fused = w * fast-path score + (1 - w) * "
                                        "logit(reranker's probability) (default: the reranker "
                                        "checkpoint's own w, else 0.5)."),
    rerank_model: Path = typer.Option(None, help="Reranker checkpoint (default: shipped)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N for the models."),
    catalog: str = typer.Option(None, help="SQLAlchemy URL of the catalog."),
    encoder: str = typer.Option(None, help="Query encoder: fp32 | int8 (the index's ONNX "
                                "graphs; default: its default one) | pytorch (slow start)."),
) -> None:
    """Search the index for the moments that best match a sentence.

    A moment's score (stage fvmr) is the inner product of the sentence's and the moment's search
    vectors: FVMR's logit of the moment matching the sentence (the shipped model adds its
    video-text term and subtracts the hub correction). Higher is better; it ranks the moments of
    one query and is not comparable across queries (not a probability). With --rerank, a
    reranked moment's score (stage pln+fvmr) is the fused log-odds, on the same scale.

    Relevance (when the index's model carries a calibration) is a probability in [0, 1] that a
    moment is a real match, comparable across queries; an answer whose best relevance is under
    the calibrated threshold is marked "no good match" (--json: "no_good_match" on each line).
    """
    from moment_search.search.searcher import Searcher

    rerank = name_of(rerank)
    with user_errors():
        check_batch_options(text, file, predictions, output_format)
        # one sentence: map the FAISS file (read only the lists it probes); a file of
        # queries: read it (mapped lists are searched ~2x slower)
        searcher = Searcher.open(index, device=device, catalog_url=catalog, encoder=encoder,
                                 mmap=file is None)
        options = {"video_ids": video or None, "nms": nms, "per_video": per_video,
                   "rerank": rerank, "rerank_videos": rerank_videos,
                   "rerank_weight": rerank_weight}
        if rerank is not None:
            searcher.add_reranker(rerank, rerank_model)
        if file is not None:
            run_file(searcher, file, k, options, predictions, output_format, as_json)
            return
        moments = searcher.search(text, k=k, **options)
    flag = searcher.no_good_match(moments)
    if as_json:
        for m in moments:
            typer.echo(json.dumps(moment_line(m, flag)))
        return
    console.print(moments_table(text, moments, no_good_match=flag))
    t = searcher.timings
    rerank_note = f", rerank {t.extra['rerank_ms']:.1f} ms" if "rerank_ms" in t.extra else ""
    console.print(f"text encoding {t.encode_ms:.1f} ms, search {t.search_ms:.1f} ms, "
                  f"NMS {t.post_ms:.1f} ms{rerank_note} over {searcher.n_proposals} proposals")
    if searcher.relevance is None:
        from moment_search.search.relevance import NO_CALIBRATION

        console.print(NO_CALIBRATION, style="dim")
