"""Frame encoders: the CLIP path on a tiny random checkpoint, plug-ins, and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from moment_search.ingest.encoders import (
    CLIP_HUB_ID,
    EncoderError,
    EncoderWeightsMissing,
    load_encoder,
)


def frames(n: int, seed: int = 0, size=(48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(*size, 3), dtype=np.uint8) for _ in range(n)]


def mean_colour(batch):
    """A plug-in encoder: each frame's mean R, G, B (3-d)."""
    return np.stack([f.reshape(-1, 3).mean(axis=0) for f in batch])


def one_row_too_few(batch):
    """A broken plug-in: one row short."""
    return np.zeros((len(batch) - 1, 4))


def test_clip_features_are_unit_norm_and_batch_independent(tiny_clip_dir):
    encoder = load_encoder("clip-vit-b32", tiny_clip_dir, device="cpu")
    batch = frames(5)
    together = encoder(batch)
    assert together.shape == (5, 8) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([encoder([f]) for f in batch])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert not np.allclose(together[0], together[1])  # different frames, different features


def test_clip_matches_the_model_on_the_processors_pixels(tiny_clip_dir):
    from transformers import CLIPModel

    encoder = load_encoder("clip-vit-b32", tiny_clip_dir, device="cpu")
    batch = frames(3, seed=1)
    pixels = encoder.encode.processor(images=batch, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (3, 3, 32, 32)
    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    with torch.inference_mode():
        vision = model.vision_model(pixel_values=pixels).pooler_output
        expected = torch.nn.functional.normalize(model.visual_projection(vision), dim=-1)
    np.testing.assert_allclose(encoder(batch), expected.numpy(), atol=1e-5)


def use_hub_cache(monkeypatch, cache: Path) -> None:
    """Point huggingface_hub and transformers at another local hub cache."""
    import huggingface_hub.constants as hub_constants
    import transformers.utils.hub as hf_hub

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_hub, "HF_HUB_CACHE", str(cache), raising=False)
    monkeypatch.setattr(hf_hub, "TRANSFORMERS_CACHE", str(cache), raising=False)


def test_clip_weights_are_found_in_the_local_hub_cache(monkeypatch, tmp_path, tiny_clip_dir):
    repo = tmp_path / "hub" / ("models--" + CLIP_HUB_ID.replace("/", "--"))
    revision = "0" * 40
    shutil.copytree(tiny_clip_dir, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    use_hub_cache(monkeypatch, tmp_path / "hub")
    encoder = load_encoder("clip-vit-b32", device="cpu")
    batch = frames(2)
    np.testing.assert_allclose(encoder(batch),
                               load_encoder("clip-vit-b32", tiny_clip_dir, "cpu")(batch))


def test_missing_clip_weights_say_how_to_get_them(monkeypatch, tmp_path):
    use_hub_cache(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(EncoderWeightsMissing) as caught:
        load_encoder("clip-vit-b32", device="cpu")
    message = str(caught.value)
    assert CLIP_HUB_ID in message and "hf download" in message and "--encoder-path" in message


def test_encoder_path_that_is_not_clip(tmp_path):
    with pytest.raises(EncoderError, match="no such folder"):
        load_encoder("clip-vit-b32", tmp_path / "absent", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="not a CLIP checkpoint"):
        load_encoder("clip-vit-b32", tmp_path / "empty", device="cpu")


def test_plugin_by_module_and_callable():
    encoder = load_encoder(f"{__name__}:mean_colour")
    batch = frames(4)
    np.testing.assert_allclose(encoder(batch), mean_colour(batch).astype(np.float32))


def test_bad_plugins_and_names():
    with pytest.raises(EncoderError, match=r"shape \(3, 4\) for 4 frames"):
        load_encoder(f"{__name__}:one_row_too_few")(frames(4))
    with pytest.raises(EncoderError, match="cannot import"):
        load_encoder("no_such_module_here:encode")
    with pytest.raises(EncoderError, match="unknown encoder 'clip'"):
        load_encoder("clip")
    with pytest.raises(EncoderError, match="--encoder-path is for named encoders"):
        load_encoder(f"{__name__}:mean_colour", path="weights")
