"""Frame encoders: a batch of RGB frames -> an (n, D) float32 feature array.

Built in, by name:

- ``clip-vit-b32``: the CLIP ViT-B/32 image tower (``transformers`` ``CLIPModel.get_image_features``
  with the checkpoint's own image processor, PIL backend: resize the short side, centre crop,
  normalise), L2-normalised, 512-d. These are the features the shipped models were trained on.
  Weights: ``openai/clip-vit-base-patch32`` from the local Hugging Face cache, or a folder saved
  with ``save_pretrained`` (``config.json``, the weights, ``preprocessor_config.json``).

Plug-ins: :func:`register_encoder` adds a name to the registry (``registry.FRAME_ENCODERS``); or
pass ``"module:callable"``, a function that takes a list of (H, W, 3) uint8 RGB arrays and
returns an (n, D) array, one row per frame. Its rows are stored as returned (float32): normalise
them yourself if your model needs it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..device import resolve_device
from ..errors import InputError, MomentSearchError
from ..registry import (
    CLIP_VIT_B32,
    frame_encoder_factory,
    list_frame_encoders,
    register_frame_encoder,
)

CLIP_HUB_ID = "openai/clip-vit-base-patch32"

# The image processor's settings that shape the features (with the weights, in the digest).
PREPROCESSING = ("size", "crop_size", "image_mean", "image_std", "resample", "rescale_factor",
                 "do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb")

FrameBatch = Sequence[np.ndarray]  # (H, W, 3) uint8 RGB frames
EncodeFn = Callable[[FrameBatch], np.ndarray]
# A named encoder: (weights folder or None, torch device) -> encode function.
EncoderFactory = Callable[[Path | None, torch.device], EncodeFn]


class EncoderError(InputError):
    """An encoder that cannot be loaded or that returns malformed features."""


class EncoderWeightsMissing(MomentSearchError, FileNotFoundError):
    """The weights of a built-in encoder are not on this machine."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What makes an encoder's features comparable: recorded with every video of a corpus
    (``encoder``, ``encoder_weights``, ``feature_dim`` in ``videos.jsonl``).

    Attributes:
        name: the registered name or ``module:callable``.
        weights: ``sha256:<16 hex>`` of the weights and preprocessing that shape the features;
            None when unknown (a plug-in that does not say).
        dim: the output width D; None when known only from the first batch (a plug-in).
    """

    name: str
    weights: str | None = None
    dim: int | None = None

    def differs_from(self, other: EncoderIdentity) -> bool:
        """Another name, or weights or width that both sides know and that differ."""
        return (self.name != other.name
                or None not in (self.weights, other.weights) and self.weights != other.weights
                or None not in (self.dim, other.dim) and self.dim != other.dim)

    def describe(self) -> str:
        """``'clip-vit-b32' (weights sha256:..., 512-d)``."""
        weights = f"weights {self.weights}" if self.weights else "weights unknown"
        width = f"{self.dim}-d" if self.dim else "width unknown"
        return f"{self.name!r} ({weights}, {width})"


@dataclass
class FrameEncoder:
    """An encode function with its name, checking every batch it returns.

    Attributes:
        name: recorded with each video's features (``encoder`` in ``videos.jsonl``).
        encode: list of (H, W, 3) uint8 frames -> (n, D) array. It may say what it is with the
            attributes ``weights_digest`` (str) and ``dim`` (int), see :class:`EncoderIdentity`.
    """

    name: str
    encode: EncodeFn

    @property
    def identity(self) -> EncoderIdentity:
        """Name, weights digest and output width, as far as the encode function says."""
        dim = getattr(self.encode, "dim", None)
        return EncoderIdentity(self.name, getattr(self.encode, "weights_digest", None),
                               None if dim is None else int(dim))

    def __call__(self, frames: FrameBatch) -> np.ndarray:
        """Encode ``frames``; returns (n, D) float32.

        Raises:
            EncoderError: the output is not (n, D) with one row per frame, or not finite.
        """
        features = np.asarray(self.encode(list(frames)), dtype=np.float32)
        if features.ndim != 2 or features.shape[0] != len(frames):
            raise EncoderError(f"encoder {self.name!r} returned an array of shape "
                               f"{features.shape} for {len(frames)} frames, expected "
                               f"({len(frames)}, D)")
        if not np.isfinite(features).all():
            raise EncoderError(f"encoder {self.name!r} returned NaN or infinite features")
        return features


class ClipImageEncoder:
    """CLIP image embeddings, L2-normalised: ``get_image_features`` of a ``CLIPModel``."""

    def __init__(self, model, processor, device: torch.device):
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device

    @property
    def dim(self) -> int:
        """Width of the embeddings (the model's projection dim)."""
        return int(self.model.config.projection_dim)

    @functools.cached_property
    def weights_digest(self) -> str:
        """``sha256:<16 hex>`` of the image tower's weights and the preprocessing settings."""
        digest = hashlib.sha256()
        settings = {name: getattr(self.processor, name, None) for name in PREPROCESSING}
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        for key, tensor in sorted(self.model.state_dict().items()):
            if key.startswith(("vision_model.", "visual_projection.")):
                data = tensor.detach().to("cpu").contiguous().reshape(-1)
                digest.update(f"{key}:{data.dtype}:{tuple(data.shape)}".encode())
                digest.update(data.view(torch.uint8).numpy().tobytes())
        return f"sha256:{digest.hexdigest()[:16]}"

    def __call__(self, frames: FrameBatch) -> np.ndarray:
        """(H, W, 3) uint8 frames -> (n, projection_dim) float32, unit L2 norm per row."""
        inputs = self.processor(images=list(frames), return_tensors="pt",
                                input_data_format="channels_last")
        pixels = inputs["pixel_values"].to(self.device)  # (n, 3, S, S)
        with torch.inference_mode():
            output = self.model.get_image_features(pixel_values=pixels)
        # transformers >= 5 returns a model output whose pooler_output is the projection
        features = output if isinstance(output, torch.Tensor) else output.pooler_output
        features = torch.nn.functional.normalize(features.float(), dim=-1)  # (n, D)
        return features.cpu().numpy()


def _image_processor_class():
    """The PIL-backed CLIP image processor (transformers >= 5 names it apart; no torchvision)."""
    try:
        from transformers import CLIPImageProcessorPil
        return CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor
        return CLIPImageProcessor


def load_clip(path: Path | None, device: torch.device) -> ClipImageEncoder:
    """CLIP from a ``save_pretrained`` folder, else ``openai/clip-vit-base-patch32`` from the
    local Hugging Face cache. Nothing is downloaded.

    Raises:
        EncoderWeightsMissing: no folder given and the weights are not in the cache.
        EncoderError: the folder is not a CLIP checkpoint with its image processor.
    """
    from transformers import CLIPModel

    source = str(path) if path is not None else CLIP_HUB_ID
    if path is not None and not Path(path).is_dir():
        raise EncoderError(f"--encoder-path {path}: no such folder, expected a CLIP checkpoint "
                           "saved with save_pretrained (config.json, model.safetensors, "
                           "preprocessor_config.json)")
    try:
        model = CLIPModel.from_pretrained(source, local_files_only=True)
        processor = _image_processor_class().from_pretrained(source, local_files_only=True)
    except OSError as e:
        if path is None:
            raise EncoderWeightsMissing(_missing_weights_message()) from e
        raise EncoderError(f"--encoder-path {path}: not a CLIP checkpoint with its image "
                           f"processor (config.json, model.safetensors, "
                           f"preprocessor_config.json): {e}") from e
    return ClipImageEncoder(model, processor, device)


def _missing_weights_message() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return (f"the CLIP ViT-B/32 weights ({CLIP_HUB_ID}) are not in the local Hugging Face "
            f"cache ({HF_HUB_CACHE}) and nothing is downloaded at run time. On a machine with "
            f"internet run `hf download {CLIP_HUB_ID}` (huggingface_hub's CLI), then copy that "
            f"cache here (HF_HOME or HF_HUB_CACHE point at it), or save the model to a folder "
            f"(CLIPModel and CLIPImageProcessor .save_pretrained) and pass --encoder-path FOLDER")


def register_encoder(name: str, factory: EncoderFactory) -> None:
    """Make ``factory`` (weights folder or None, device -> encode function) loadable by name."""
    register_frame_encoder(name, factory)


def load_encoder(name: str = CLIP_VIT_B32, path: str | Path | None = None,
                 device: str | torch.device = "auto") -> FrameEncoder:
    """Load a frame encoder by registered name or as ``"module:callable"``.

    Args:
        name: a registered name (``registry.list_frame_encoders``), or
            ``"package.module:function"``.
        path: weights folder for a named encoder (None: its default source).
        device: ``auto`` | ``cpu`` | ``cuda[:N]``, resolved here, once.

    Raises:
        EncoderError: an unknown name, an import that fails, or a path given to a plug-in.
        EncoderWeightsMissing: see :func:`load_clip`.
    """
    factory = frame_encoder_factory(name)
    if factory is not None:
        folder = None if path is None else Path(path)
        return FrameEncoder(name, factory(folder, resolve_device(device)))
    if ":" not in name:
        raise EncoderError(f"unknown encoder {name!r}: expected one of {list_frame_encoders()} or "
                           "'module:callable' (a function from a list of RGB frames to an "
                           "(n, D) array)")
    if path is not None:
        raise EncoderError(f"--encoder-path is for named encoders; the plug-in {name!r} "
                           "loads its own weights")
    return FrameEncoder(name, _import_callable(name))


def _import_callable(spec: str) -> EncodeFn:
    module_name, _, attribute = spec.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise EncoderError(f"encoder {spec!r}: cannot import it ({e})") from e
    if not callable(target):
        raise EncoderError(f"encoder {spec!r} is a {type(target).__name__}, not a function")
    return target
