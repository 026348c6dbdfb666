"""Fixtures of the ingest tests: the two real videos, a tiny random CLIP checkpoint, synthetic
files (variable frame rate, audio only, damaged)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ..conftest import SHARED_DATA, require_shared_data

VIDEOS = SHARED_DATA / "videos"
REAL_VIDEOS = ("v_GGSY1Qvo990.mp4", "v_ZNVhz7ctTq0.mp4")
# Presentation times (s) of the frames of the synthetic variable-frame-rate video.
VFR_TIMES = (0.0, 0.1, 0.15, 0.9, 1.0, 1.7, 2.6, 2.65, 3.3, 4.2)


@pytest.fixture(scope="session")
def real_videos() -> list[Path]:
    """The two real ActivityNet videos of ../shared/data/videos (skip when absent)."""
    require_shared_data(VIDEOS)
    return [VIDEOS / name for name in REAL_VIDEOS]


def save_tiny_clip(path: Path, seed: int = 0, projection_dim: int = 8) -> Path:
    """Save a CLIP checkpoint with seeded random weights (32-px images, ``projection_dim``-d
    output) and its image processor with save_pretrained: loaded by the same code as the real
    weights."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(tower, vocab_size=64, max_position_embeddings=16, bos_token_id=0,
                         eos_token_id=1, pad_token_id=1),
        vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=projection_dim)
    CLIPModel(config).eval().save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random CLIP checkpoint (seed 0, 8-d), see :func:`save_tiny_clip`."""
    return save_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip")


def write_vfr_video(path: Path, times=VFR_TIMES) -> Path:
    """An MPEG-4 video in Matroska whose frame i is shown from ``times[i]`` on, painted the
    solid grey 20 i + 10 (so a decoded frame tells its index)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i + 10, np.uint8),
                                               format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path) -> Path:
    """An MP4 with one AAC audio stream (one second of silence) and no video."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), np.float32)
        for _ in range(16):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def truncated_copy(source: Path, target: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of ``source``'s bytes (its header says the full duration)."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def copy_video(source: Path, target: Path) -> Path:
    """A copy of a video file (for tests that need it in a folder of their own)."""
    shutil.copyfile(source, target)
    return target
