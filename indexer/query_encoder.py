"""The query encoder an index carries (``INDEX/encoder/``): exported at ``index build``, added
to an older index by ``index add`` or ``index export-encoder``.

The encoder depends only on the index's model, never on its vectors, so it is written (atomically,
see ``search.encoder_export``) before the vectors are published and is never part of a version.
"""

from __future__ import annotations

from pathlib import Path

from ..data.corpus import CorpusError
from ..data.corpus_dir import open_corpus, read_split
from ..search.onnx_encoder import (
    ENCODER_DIR,
    TOKENIZER_FILE,
    EncoderError,
    EncoderMeta,
    graph_file,
)
from .integrity import require_index
from .lock import writer_lock
from .store import MODEL_DIR, model_fingerprint

CHECK_SPLIT = "val"  # the corpus sentences the export is checked on, when the corpus has them


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
    return (meta.model_id, meta.config_hash) == model_fingerprint(model_dir)


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
    from ..search.encoder_export import export_query_encoder

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
