"""``moment-search ingest``: raw video files -> a corpus folder (features/ + videos.jsonl)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from .common import console, err_console, user_errors

ENCODER_HELP = ("clip-vit-b32 (CLIP ViT-B/32 image embeddings, what the shipped models expect) "
                "or module:callable (a function from a list of RGB frames to an (n, D) array).")


class FramesPerSecondColumn(ProgressColumn):
    """The bar's recent rate, in encoded frames per second."""

    def render(self, task) -> Text:
        return Text(f"{task.speed or 0.0:.1f} frames/s")


def make_progress():
    """A rich bar over the frames of all videos (each video adds its frames when it starts)."""
    from moment_search.ingest.pipeline import IngestProgress

    class BarProgress(IngestProgress):
        def __init__(self):
            self.bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                BarColumn(), MofNCompleteColumn(), FramesPerSecondColumn(),
                                TimeElapsedColumn(), console=err_console, transient=True)
            self.task = self.bar.add_task("ingest", total=0)
            self.expected = 0

        def start_video(self, video_id: str, n_rows: int) -> None:
            done = self.bar.tasks[0].completed
            self.expected = done + n_rows
            self.bar.update(self.task, total=self.expected, description=video_id)

        def advance(self, n_frames: int) -> None:
            self.bar.update(self.task, advance=n_frames)

        def finish_video(self, outcome) -> None:
            # a failed video's remaining frames leave the total
            self.bar.update(self.task, total=self.bar.tasks[0].completed)
            if outcome.status == "failed":
                self.bar.console.print(f"[bold red]failed:[/] {outcome.error} (skipped)",
                                       highlight=False, soft_wrap=True)

    return BarProgress()


def print_report(report) -> None:
    """Counts, throughput, and the files that failed."""
    console.print(f"{report.count('done')} video(s) ingested, {report.count('skipped')} already "
                  f"done, {len(report.failed)} failed -> {report.corpus}", highlight=False)
    if report.frames:
        decoding = _rate(report.frames, report.decode_seconds)
        encoding = _rate(report.frames, report.encode_seconds)
        console.print(f"{report.frames} frames: decoding {decoding}, encoding {encoding}",
                      highlight=False)
    for outcome in report.failed:
        err_console.print(f"[bold red]failed:[/] {outcome.error}", highlight=False,
                          soft_wrap=True)


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:.1f} frames/s" if seconds > 0 else "n/a"


def ingest(
    videos: list[Path] = typer.Argument(..., help="Video files and/or folders of videos "
                                        "(mp4, mkv, webm, avi, mov)."),
    out: Path = typer.Option(..., help="Corpus folder to write (features/ + videos.jsonl)."),
    encoder: str = typer.Option("clip-vit-b32", help=ENCODER_HELP),
    encoder_path: Path = typer.Option(None, help="Weights folder of a named encoder (default for "
                                      "clip-vit-b32: the local Hugging Face cache)."),
    fps: float = typer.Option(1.0, help="Features per second (the shipped models expect 1)."),
    batch: int = typer.Option(32, help="Frames per encoder call."),
    device: str = typer.Option("auto", help="auto | cpu | cuda:N."),
    resume: bool = typer.Option(False, help="Continue OUT: skip its finished videos, add "
                                "the others."),
    ray: str = typer.Option(None, "--ray", help="Run on a Ray cluster: 'auto' (RAY_ADDRESS, a "
                            "cluster started on this machine, else a local one) or its address "
                            "(host:6379, ray://host:10001). Needs the ray extra of "
                            "moment-search."),
    ray_workers: int = typer.Option(None, help="With --ray: encoder actors (default: one per "
                                    "GPU of the cluster, else 1)."),
) -> None:
    """Decode videos, encode their frames at FPS and write a corpus that 'index build' takes.

    A file that cannot be decoded is reported and skipped; the exit status is 1 when any file
    failed, 2 on bad options or an output folder that cannot take the run.
    """
    from moment_search.ingest.pipeline import IngestConfig, ingest_videos

    config = IngestConfig(encoder=encoder, encoder_path=encoder_path, fps=fps, batch=batch,
                          device=device, resume=resume)
    with user_errors():
        progress = make_progress()
        with progress.bar:
            if ray is None:
                report = ingest_videos(videos, out, config, progress)
            else:
                report = _ingest_on_ray(videos, out, config, ray, ray_workers, progress)
    print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _ingest_on_ray(videos, out, config, address: str, workers: int | None, progress):
    from moment_search.ingest.ray_ingest import RayIngestConfig, ingest_videos_ray

    return ingest_videos_ray(videos, out, config, RayIngestConfig(address=address,
                                                                  workers=workers), progress)
