"""Throughput of ``moment-search ingest`` on this machine: decoding, and encoding with a tiny
random CLIP and with a real-size (ViT-B/32) CLIP image tower of random weights.

    OMP_NUM_THREADS=1 python -m moment_search.benchmarks.ingest_throughput VIDEO... [--repeat 3]

Decoding is timed over the given videos at 1 frame/s (rows/s, and the source frames decoded per
second to get them); encoding over batches of 32 frames of those videos. Random weights cost
the same forward time as trained ones of the same size.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moment_search.ingest.decode import sample_frames
from moment_search.ingest.encoders import ClipImageEncoder, _image_processor_class

VIT_B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
               num_attention_heads=12, patch_size=32)  # CLIP ViT-B/32's image tower


@dataclass
class IngestThroughputConfig:
    """One run; :func:`main` builds it from the command line."""

    videos: list[Path]  # the video files decoded and encoded
    repeat: int = 3  # passes per measurement; the best is kept
    batch: int = 32  # frames per encoder batch (and frames encoded)


def time_decoding(videos: list[Path], repeat: int) -> dict:
    """Best of ``repeat`` full passes over ``videos`` at 1 frame/s."""
    import av

    source_frames = 0
    for path in videos:
        with av.open(str(path)) as container:
            source_frames += sum(1 for _ in container.decode(container.streams.video[0]))
    best, rows = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = sum(1 for path in videos for _ in sample_frames(path, 1.0))
        best = min(best, time.perf_counter() - started)
    return {"rows": rows, "source_frames": source_frames, "seconds": best,
            "rows_per_s": rows / best, "source_frames_per_s": source_frames / best}


def clip_encoder(vision: dict, image_size: int) -> ClipImageEncoder:
    """A CLIP image encoder of random weights with the given vision tower."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=64, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                pad_token_id=1)
    projection = 512 if vision else 8
    vision = vision or dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, projection_dim=projection,
                                 vision_config=dict(vision, image_size=image_size)))
    processor = _image_processor_class()(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    return ClipImageEncoder(model, processor, torch.device("cpu"))


def time_encoding(encoder: ClipImageEncoder, frames: list[np.ndarray], batch: int,
                  repeat: int) -> dict:
    """Best of ``repeat`` encodings of ``frames`` in batches; also the forward pass alone."""
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    encoder(batches[0])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for chunk in batches:
            encoder(chunk)
        best = min(best, time.perf_counter() - started)
    pixels = encoder.processor(images=batches[0], return_tensors="pt")["pixel_values"]
    started = time.perf_counter()
    with torch.inference_mode():
        encoder.model.get_image_features(pixel_values=pixels)
    forward = time.perf_counter() - started
    return {"frames": len(frames), "seconds": best, "frames_per_s": len(frames) / best,
            "forward_ms_per_frame": 1000 * forward / len(batches[0])}


def run(config: IngestThroughputConfig) -> dict:
    """The machine, decoding at 1 frame/s, and encoding with a tiny and a ViT-B/32-size CLIP."""
    machine = (f"{platform.processor() or platform.machine()}, torch threads "
               f"{torch.get_num_threads()}, torch {torch.__version__}")
    decoding = time_decoding(config.videos, config.repeat)
    frames = [f.rgb for path in config.videos for f in sample_frames(path, 1.0)][:config.batch]
    return {"machine": machine, "decoding": decoding,
            "tiny_clip": time_encoding(clip_encoder({}, 32), frames, config.batch, config.repeat),
            "vit_b32": time_encoding(clip_encoder(VIT_B32, 224), frames, config.batch,
                                     config.repeat)}


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring); an option not given keeps the default of
    :class:`IngestThroughputConfig`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     argument_default=argparse.SUPPRESS)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--batch", type=int)
    result = run(IngestThroughputConfig(**vars(parser.parse_args(argv))))
    print(f"machine: {result['machine']}")
    print("decoding at 1 frame/s:", result["decoding"])
    print("tiny CLIP (1 layer, 32 px):", result["tiny_clip"])
    print("ViT-B/32 (224 px, random weights):", result["vit_b32"])


if __name__ == "__main__":
    main()
