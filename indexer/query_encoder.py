"""The query encoder an index carries (``INDEX/encoder/``): exported at ``index build``, added
to an older index by ``index add`` or ``index export-encoder``, opened by the searcher.

The encoder depends only on the index's model, never on its vectors, so it is written (atomically,
see ``embed.encoder_export``) before the vectors are published and is never part of a version.
It must have been exported from the very checkpoint the index was built with (its
``encoder.json`` names the model fingerprint the catalog records); an index without one still
answers, through the PyTorch ``QueryEncoder``, after a warning that says how to add the encoder.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..data.corpus import CorpusError
from ..data.corpus_dir import open_corpus, read_split
from ..embed.onnx_encoder import (
    ENCODER_DIR,
    TOKENIZER_FILE,
    EncoderError,
    EncoderMeta,
    OnnxQueryEncoder,
    graph_file,
)
from ..models.base import CONFIG_NAME, model_fingerprint
from .integrity import require_index
from .lock import writer_lock
from .store import MODEL_DIR

CHECK_SPLIT = "val"  # the corpus sentences the export is checked on, when the corpus has them
PYTORCH = "pytorch"  # the precision name of the PyTorch encoder
EXPORT_HINT = ("add one with 'moment-search index export-encoder --index {index}' (or build the "
               "index again)")


def has_encoder_of(index_dir: Path, model_dir: Path) -> bool:
    """True when ``INDEX/encoder`` exists and was exported from ``model_dir``'s checkpoint."""
    folder = Path(index_dir) / ENCODER_DIR
    if not folder.is_dir():
        return False
    try:
        meta = EncoderMeta.read(folder)
    except EncoderError:
        return False
    files = [TOKENIZER_FILE, *(graph_file(p) for p in meta.precisions)]
    if not all((folder / name).is_file() for name in files):
        return False  # a graph or the tokenizer is gone: export again
    if column_unrecorded(meta, model_dir):
        return False  # exported before encoder.json named the constant column: export again
    return (meta.model_id, meta.config_hash) == model_fingerprint(model_dir)


def column_unrecorded(meta: EncoderMeta, model_dir: Path) -> bool:
    """True for an encoder exported before ``encoder.json`` recorded the constant column, of a
    model whose search vectors have one (the hub correction or the per-cell prior): a search
    within one video then keeps that column (read from the checkpoint's JSON, no PyTorch)."""
    if meta.constant_column is not None:
        return False
    config = json.loads((Path(model_dir) / CONFIG_NAME).read_text()).get("config", {})
    return bool(config.get("hub_bank") or config.get("cell_prior"))


def check_sentences(corpus_dir: str | Path | None) -> list[str]:
    """The sentences an export is checked on: the corpus's val split, else all its sentences
    (none for a corpus without annotations, e.g. one made by ``ingest``)."""
    if corpus_dir is None:
        return []
    try:
        corpus = read_split(corpus_dir, CHECK_SPLIT)
    except CorpusError:
        try:
            corpus, _ = open_corpus(corpus_dir)
        except (CorpusError, OSError):
            return []
    return [query.text for query in corpus.queries]


def ensure_query_encoder(index_dir: Path, model_dir: Path, corpus_dir: str | Path | None = None,
                         force: bool = False) -> EncoderMeta | None:
    """Export the encoder of ``model_dir`` into ``INDEX/encoder`` unless it is there already
    (``force``: export it all the same).

    Call it holding the writer lock. Returns the new metadata, or None when nothing was done.
    """
    from ..embed.encoder_export import export_query_encoder

    if not force and has_encoder_of(index_dir, model_dir):
        return None
    return export_query_encoder(model_dir, Path(index_dir) / ENCODER_DIR,
                                check_sentences(corpus_dir))


def export_index_encoder(index_dir: str | Path, catalog_url: str | None = None,
                         corpus_dir: str | Path | None = None, wait: float = 0.0,
                         force: bool = False) -> EncoderMeta | None:
    """``index export-encoder``: give a finished index its ONNX query encoder.

    Args:
        index_dir: the index.
        catalog_url: its catalog, when not the SQLite file inside it.
        corpus_dir: a corpus whose (val) sentences the export is checked on, besides the
            built-in ones.
        wait: seconds to wait for another writer's lock.
        force: export again even when an encoder of this model is there.

    Returns:
        The metadata written, or None when the index already had its encoder.
    """
    index_dir = Path(index_dir)
    require_index(index_dir, catalog_url)
    with writer_lock(index_dir, "index export-encoder", wait):
        return ensure_query_encoder(index_dir, index_dir / MODEL_DIR, corpus_dir, force)


class PyTorchFallbackWarning(UserWarning):
    """An index without an ONNX query encoder: queries are encoded by PyTorch (slower start)."""


class StaleEncoderWarning(UserWarning):
    """An encoder exported before ``encoder.json`` recorded the constant column."""


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
    if column_unrecorded(meta, Path(index_dir) / MODEL_DIR):
        warnings.warn(f"{folder} was exported before encoder.json recorded the search vectors' "
                      f"constant column, so a search within one video keeps the per-cell prior; "
                      f"export it again: 'moment-search index export-encoder --index "
                      f"{index_dir}'", StaleEncoderWarning, stacklevel=3)
    return OnnxQueryEncoder(folder, precision=precision, device=device)


def pytorch_query_encoder(index_dir: Path, device: str = "auto", token_cache: int | None = None):
    """The PyTorch ``QueryEncoder`` of the index's checkpoint (see :func:`pytorch_encoder`)."""
    from ..embed.encoders import pytorch_encoder

    return pytorch_encoder(Path(index_dir) / MODEL_DIR, device, token_cache)
