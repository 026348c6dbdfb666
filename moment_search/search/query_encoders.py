"""Which query encoder an opened index uses: the ONNX one it carries, else PyTorch (old indexes).

The ONNX encoder (``INDEX/encoder/``) must have been exported from the very checkpoint the
index was built with (its ``encoder.json`` names the model fingerprint the catalog records);
an index without one still answers, through the PyTorch ``QueryEncoder``, after a warning that
says how to add the encoder.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .onnx_encoder import ENCODER_DIR, EncoderError, EncoderMeta, OnnxQueryEncoder

PYTORCH = "pytorch"
EXPORT_HINT = ("add one with 'moment-search index export-encoder {index}' (or build the index "
               "again)")


class PyTorchFallbackWarning(UserWarning):
    """An index without an ONNX query encoder: queries are encoded by PyTorch (slower start)."""


def open_query_encoder(index_dir: Path, info, device: str = "auto",
                       precision: str | None = None, token_cache: int | None = None):
    """The query encoder of an index.

    Args:
        index_dir: the index directory.
        info: the catalog's ``IndexInfo`` (model fingerprint of the index).
        device: ``auto | cpu | cuda[:N]``.
        precision: ``fp32`` / ``int8`` (a graph the folder holds), None for its default, or
            ``pytorch`` for the PyTorch encoder (what queries ran on before indexes carried
            an ONNX one; benchmarks compare with it).
        token_cache: sentences the PyTorch encoder's token cache keeps (None: its default).

    Returns:
        An :class:`OnnxQueryEncoder`, or a PyTorch ``QueryEncoder`` when the index has no
        encoder folder (a :class:`PyTorchFallbackWarning` says so).

    Raises:
        EncoderError: an encoder folder of another model, or a damaged one.
    """
    folder = Path(index_dir) / ENCODER_DIR
    if precision == PYTORCH:
        return pytorch_query_encoder(index_dir, device, token_cache)
    if not folder.is_dir():
        warnings.warn(f"{index_dir} has no ONNX query encoder (built before indexes carried "
                      f"one, or with --no-query-encoder), so queries are encoded with PyTorch, "
                      f"which is slower to start; {EXPORT_HINT.format(index=index_dir)}",
                      PyTorchFallbackWarning, stacklevel=3)
        return pytorch_query_encoder(index_dir, device, token_cache)
    meta = EncoderMeta.read(folder)
    if (meta.model_id, meta.config_hash) != (info.model_id, info.config_hash):
        raise EncoderError(f"{folder} was exported from model {meta.model_id} (config "
                           f"{meta.config_hash}) but the index was built with {info.model_id} "
                           f"(config {info.config_hash}); "
                           f"{EXPORT_HINT.format(index=index_dir)}")
    return OnnxQueryEncoder(folder, precision=precision, device=device)


def pytorch_query_encoder(index_dir: Path, device: str = "auto", token_cache: int | None = None):
    """The PyTorch ``QueryEncoder`` of the index's checkpoint (see :func:`pytorch_encoder`)."""
    from ..indexer.store import MODEL_DIR

    return pytorch_encoder(Path(index_dir) / MODEL_DIR, device, token_cache)


def pytorch_encoder(model_dir: Path, device: str = "auto", token_cache: int | None = None):
    """The PyTorch ``QueryEncoder`` of an FVMR checkpoint (imports torch, transformers);
    ``token_cache``: its sentence cache size (None: TokenEncoder's default)."""
    from ..device import resolve_device
    from ..models.fvmr import FVMR
    from ..text.tokens import TokenEncoder
    from .encoders import QueryEncoder

    torch_device = resolve_device(device)
    model = FVMR.from_pretrained(model_dir, torch_device)
    _, extra = FVMR.read_config(model_dir)
    cache = {} if token_cache is None else {"cache_size": token_cache}
    tokens = TokenEncoder(device=torch_device, max_length=int(extra.get("max_tokens", 32)),
                          **cache)
    return QueryEncoder(model, tokens)
