"""``ingest --resume`` refuses an encoder other than the corpus's (issue 23, item 3): the
manifest records each video's encoder name, weights digest and output width."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from moment_search.cli.app import main

from moment_search.ingest.encoders import load_encoder
from moment_search.ingest.pipeline import IngestConfig, ingest_videos

from .conftest import save_tiny_clip, write_vfr_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Three tiny random CLIPs: the corpus's, other weights of the same width, another width."""
    root = tmp_path_factory.mktemp("clips")
    return {"corpus": save_tiny_clip(root / "a", seed=0, projection_dim=8),
            "other-weights": save_tiny_clip(root / "b", seed=1, projection_dim=8),
            "other-width": save_tiny_clip(root / "c", seed=2, projection_dim=16)}


@pytest.fixture()
def videos(tmp_path) -> list[Path]:
    folder = tmp_path / "videos"
    folder.mkdir()
    return [write_vfr_video(folder / f"{name}.mkv") for name in ("first", "second")]


def argv(videos, out: Path, clip: Path, *extra: str) -> list[str]:
    return ["ingest", *map(str, videos), "--out", str(out), "--encoder-path", str(clip),
            "--device", "cpu", *extra]


def rows(corpus: Path) -> dict[str, dict]:
    lines = (corpus / "videos.jsonl").read_text().splitlines()
    return {row["video_id"]: row for row in map(json.loads, lines)}


def test_the_manifest_records_the_encoder_identity(tmp_path, videos, clips):
    corpus = tmp_path / "corpus"
    ingest_videos(videos[:1], corpus, IngestConfig(encoder_path=clips["corpus"], device="cpu"))
    identity = load_encoder("clip-vit-b32", clips["corpus"], "cpu").identity
    row = rows(corpus)["first"]
    assert (row["encoder"], row["encoder_weights"], row["feature_dim"]) == \
        ("clip-vit-b32", identity.weights, 8)
    assert identity.weights.startswith("sha256:") and len(identity.weights) == 23
    # the digest is of the weights, not of where they were loaded from
    assert load_encoder("clip-vit-b32", clips["corpus"], "cpu").identity == identity
    other = load_encoder("clip-vit-b32", clips["other-weights"], "cpu").identity
    assert other.weights != identity.weights and other.dim == 8


@pytest.mark.parametrize("other, held, asked", [
    ("other-width", "8-d", "16-d"),
    ("other-weights", "8-d", "8-d"),
])
def test_resume_with_another_encoder_is_refused_naming_both(tmp_path, videos, clips, capsys,
                                                            other, held, asked):
    corpus = tmp_path / "corpus"
    assert main(argv(videos[:1], corpus, clips["corpus"])) == 0
    before = (corpus / "videos.jsonl").read_bytes()
    mine = load_encoder("clip-vit-b32", clips["corpus"], "cpu").identity.weights
    theirs = load_encoder("clip-vit-b32", clips[other], "cpu").identity.weights
    capsys.readouterr()
    assert main(argv(videos, corpus, clips[other], "--resume")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"1 video(s) (first) were ingested with encoder 'clip-vit-b32' (weights {mine}, " \
           f"{held})" in err
    assert f"this run's encoder is 'clip-vit-b32' (weights {theirs}, {asked})" in err
    assert (corpus / "videos.jsonl").read_bytes() == before  # nothing written
    assert sorted(p.name for p in (corpus / "features").iterdir()) == ["first.npy"]
    assert main(argv(videos, corpus, clips["corpus"], "--resume")) == 0  # same encoder: fine
    assert {np.load(corpus / "features" / f"{v}.npy").shape[1] for v in rows(corpus)} == {8}


def constant_encoder(width: int):
    """A registered encoder factory whose function does not say its width."""
    return lambda folder, device: (lambda batch: np.ones((len(batch), width), np.float32))


def test_a_plugin_of_another_width_is_refused_before_its_first_write(tmp_path, videos,
                                                                     monkeypatch):
    from moment_search import registry

    corpus = tmp_path / "corpus"
    monkeypatch.setitem(registry.FRAME_ENCODERS, "plain", constant_encoder(8))
    ingest_videos(videos[:1], corpus, IngestConfig(encoder="plain", device="cpu"))
    assert rows(corpus)["first"]["feature_dim"] == 8
    monkeypatch.setitem(registry.FRAME_ENCODERS, "plain", constant_encoder(16))
    with pytest.raises(ValueError, match=r"with encoder 'plain' \(weights unknown, 8-d\); this "
                                         r"run's encoder is 'plain' \(weights unknown, 16-d\)"):
        ingest_videos(videos, corpus, IngestConfig(encoder="plain", device="cpu", resume=True))
    assert set(rows(corpus)) == {"first"}
    assert sorted(p.name for p in (corpus / "features").iterdir()) == ["first.npy"]


def test_a_corpus_written_before_identities_were_recorded_is_checked_by_width(tmp_path, videos,
                                                                            clips):
    corpus = tmp_path / "corpus"
    ingest_videos(videos[:1], corpus, IngestConfig(encoder_path=clips["corpus"], device="cpu"))
    old = {k: v for k, v in rows(corpus)["first"].items()
           if k not in ("encoder_weights", "feature_dim")}
    (corpus / "videos.jsonl").write_text(json.dumps(old) + "\n")
    with pytest.raises(ValueError, match=r"\(weights unknown, 8-d\); this run's encoder is "
                                         r"'clip-vit-b32' \(weights sha256:\w+, 16-d\)"):
        ingest_videos(videos, corpus, IngestConfig(encoder_path=clips["other-width"],
                                                   device="cpu", resume=True))
    ingest_videos(videos, corpus, IngestConfig(encoder_path=clips["other-weights"],
                                               device="cpu", resume=True))  # cannot tell
    assert set(rows(corpus)) == {"first", "second"}
