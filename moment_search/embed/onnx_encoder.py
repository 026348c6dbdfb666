"""The query encoder an index carries: ``INDEX/encoder/`` run by ONNX Runtime, without PyTorch.

::

    INDEX_DIR/encoder/
      text.onnx        tokenizer output -> MiniLM -> FVMR's text tower -> the corpus terms
                       (see ``text_graph.TextSide``; written by ``encoder_export``)
      tokenizer.json   MiniLM's tokenizer, run by the ``tokenizers`` library
      encoder.json     what it encodes for: the model fingerprint, widths, the token limit, the
                       precision, and the agreement with PyTorch measured at export

:class:`OnnxQueryEncoder` answers ``encode(texts) -> (B, D)`` as the PyTorch ``QueryEncoder``
does (cosine >= 0.9999 checked at export), imports only numpy, ``tokenizers`` and
``onnxruntime``, and releases the GIL while it runs, so threads of a server encode in parallel.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, InputError
from .one_video import OneVideoWeights

ENCODER_DIR = "encoder"
GRAPH_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "encoder.json"
FORMAT_VERSION = 1
# variants an encoder folder may hold besides the fp32 graph: precision -> file
QUANTIZED_FILES = {"int8": "text-int8.onnx"}


class EncoderError(DataError):
    """An encoder folder that is missing, incomplete or made for another model."""


@dataclass(frozen=True)
class EncoderMeta:
    """The contents of ``encoder.json``."""

    model_id: str  # fingerprint of the FVMR checkpoint it was exported from
    config_hash: str
    embedding_dim: int
    max_tokens: int  # word pieces per sentence, [CLS]/[SEP] not counted
    text_model: str
    default_precision: str = "fp32"  # the graph ``open`` uses unless told otherwise
    precisions: tuple[str, ...] = ("fp32",)
    check: dict | None = None  # agreement with PyTorch measured at export
    # the query side's constant-1 column (hub correction and per-cell prior; None: none), left
    # out of a search within one video (``Searcher``); an encoder exported before it was
    # recorded reads None and keeps the column
    constant_column: int | None = None
    # where the video-text columns sit and what a search within one video multiplies them by
    # (``one_video``); an encoder exported before they were recorded reads (None, 1.0), which
    # is what every model made before them does
    video_text_columns: tuple[int, int] | None = None
    one_video_text_scale: float = 1.0

    @property
    def one_video(self) -> OneVideoWeights:
        """How a search within one video weighs the query's columns (``embed.one_video``)."""
        return OneVideoWeights(self.constant_column, self.video_text_columns,
                               self.one_video_text_scale)

    def to_dict(self) -> dict:
        """JSON-ready fields (with the format version)."""
        return {"format_version": FORMAT_VERSION, "model_id": self.model_id,
                "config_hash": self.config_hash, "embedding_dim": self.embedding_dim,
                "max_tokens": self.max_tokens, "text_model": self.text_model,
                "default_precision": self.default_precision,
                "precisions": list(self.precisions), "check": self.check,
                "constant_column": self.constant_column,
                "video_text_columns": (None if self.video_text_columns is None
                                       else list(self.video_text_columns)),
                "one_video_text_scale": self.one_video_text_scale}

    def write(self, folder: Path) -> None:
        """Write ``folder/encoder.json`` atomically (a temp file, then a rename)."""
        from ..atomic import atomic_write_text

        atomic_write_text(Path(folder) / META_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, folder: Path) -> EncoderMeta:
        """Read ``folder/encoder.json``.

        Raises:
            EncoderError: missing, unreadable, or of another format version.
        """
        path = folder / META_FILE
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise EncoderError(f"{path} is missing") from e
        except (OSError, json.JSONDecodeError) as e:
            raise EncoderError(f"{path}: not readable JSON ({e})") from e
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            found = data.get("format_version") if isinstance(data, dict) else type(data).__name__
            raise EncoderError(f"{path}: format_version {found!r}, expected {FORMAT_VERSION}; "
                               f"export the encoder again")
        try:
            return cls._from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            raise EncoderError(f"{path}: a field is missing or malformed ({e!r}); export the "
                               f"encoder again ('moment-search index export-encoder --force')"
                               ) from e

    @classmethod
    def _from_dict(cls, data: dict) -> EncoderMeta:
        width, column = int(data["embedding_dim"]), _optional_int(data.get("constant_column"))
        return cls(data["model_id"], data["config_hash"], width,
                   int(data["max_tokens"]), data.get("text_model", ""),
                   data.get("default_precision", "fp32"),
                   tuple(data.get("precisions", ["fp32"])), data.get("check"), column,
                   _optional_span(data.get("video_text_columns"), width, column),
                   _scale(data.get("one_video_text_scale", 1.0)))


def graph_file(precision: str) -> str:
    """The file name of the graph of ``precision`` (``fp32`` or a key of QUANTIZED_FILES)."""
    if precision == "fp32":
        return GRAPH_FILE
    if precision not in QUANTIZED_FILES:
        raise EncoderError(f"unknown encoder precision {precision!r}; expected one of "
                           f"{', '.join(['fp32', *QUANTIZED_FILES])}")
    return QUANTIZED_FILES[precision]


def load_tokenizer(path: Path, max_tokens: int):
    """MiniLM's ``tokenizers.Tokenizer`` from ``tokenizer.json``: truncated to ``max_tokens``
    word pieces plus [CLS]/[SEP] (as ``TokenEncoder`` truncates), padded to the longest."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(max_length=max_tokens + 2)
    tokenizer.enable_padding()
    return tokenizer


def graph_inputs(tokenizer, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The four int64 inputs of ``text.onnx`` for B sentences (see ``text_graph``).

    Raises:
        InputError: a sentence that is empty or leaves no word piece (names its position).
    """
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"query {i + 1} is empty; expected a sentence", parameter="q")
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)  # (B, T)
    attention = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # (B, T)
    special = np.array([e.special_tokens_mask for e in encodings], dtype=bool)  # (B, T)
    keep = (attention > 0) & ~special  # (B, T) the sentence's own word pieces
    lengths = keep.sum(1)  # (B,)
    if not lengths.all():
        empty = int(np.flatnonzero(lengths == 0)[0])
        raise InputError(f"query {empty + 1} ({texts[empty]!r}) has no word pieces; "
                         f"expected a sentence", parameter="q")
    width = int(lengths.max())
    # a stable sort puts each row's kept positions first, in order
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]  # (B, L)
    mask = (np.arange(width)[None] < lengths[:, None]).astype(np.int64)  # (B, L)
    return {"input_ids": ids, "attention_mask": attention,
            "token_index": np.where(mask > 0, order, 0).astype(np.int64), "token_mask": mask}


def available_providers() -> list[str]:
    """ONNX Runtime's execution providers in this install (CUDA only with onnxruntime-gpu)."""
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def providers_for(device: str) -> list[str]:
    """Execution providers for ``auto | cpu | cuda[:N]``; CUDA falls back to the CPU with a
    warning when onnxruntime has no CUDA provider.

    Raises:
        ValueError: a device string that is none of those.
    """
    name = str(device).strip().lower()
    if name != "auto" and name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if name == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if name != "auto":
        warnings.warn(f"device {device!r} requested but onnxruntime has no CUDA provider "
                      f"(pip install onnxruntime-gpu); encoding queries on the cpu", stacklevel=3)
    return ["CPUExecutionProvider"]


def _optional_int(value) -> int | None:
    """None, or ``value`` as an int (a malformed one raises ValueError/TypeError)."""
    return None if value is None else int(value)


def _optional_span(value, width: int, constant_column: int | None) -> tuple[int, int] | None:
    """None, or ``value`` as the [start, stop) of the video-text columns: two ints inside the
    ``width`` columns, clear of the constant column (else ValueError naming the field)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"video_text_columns {value!r} is not a [start, stop) pair")
    start, stop = (int(v) for v in value)
    if not 0 <= start < stop <= width or (constant_column is not None
                                          and start <= constant_column < stop):
        raise ValueError(f"video_text_columns {value!r} is not a [start, stop) span of the "
                         f"{width} columns clear of the constant column {constant_column}")
    return start, stop


def _scale(value) -> float:
    """``value`` as the one-video scale: a finite number >= 0 (else ValueError naming it)."""
    scale = float(value)
    if not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"one_video_text_scale {value!r} is not a finite number >= 0")
    return scale


class OnnxQueryEncoder:
    """Sentences -> search vectors with the encoder folder of an index (see the module doc).

    Args:
        folder: ``INDEX_DIR/encoder``.
        precision: ``fp32``, a quantized variant the folder holds, or None for its default.
        device: ``auto | cpu | cuda[:N]`` (CUDA needs onnxruntime-gpu).
        threads: ONNX Runtime intra-op threads per call; 1 suits one short sentence (a server
            runs calls of different requests in parallel instead); 0 lets ONNX Runtime choose.

    Raises:
        EncoderError: a missing or incomplete folder, or an unknown precision.
    """

    def __init__(self, folder: str | Path, precision: str | None = None, device: str = "cpu",
                 threads: int = 1):
        import onnxruntime

        self.folder = Path(folder)
        self.meta = EncoderMeta.read(self.folder)
        self.precision = precision or self.meta.default_precision
        graph = self.folder / graph_file(self.precision)
        if self.precision not in self.meta.precisions:
            raise EncoderError(f"{self.folder}: no {self.precision} graph (it holds "
                               f"{', '.join(self.meta.precisions)})")
        for path in (graph, self.folder / TOKENIZER_FILE):
            if not path.is_file():
                raise EncoderError(f"{path} is missing; export the encoder again "
                                   f"('moment-search index export-encoder --force')")
        self.tokenizer = load_tokenizer(self.folder / TOKENIZER_FILE, self.meta.max_tokens)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        self.session = onnxruntime.InferenceSession(str(graph), options,
                                                    providers=providers_for(device))

    @property
    def one_video(self) -> OneVideoWeights:
        """How a search within one video weighs the query's columns (``EncoderMeta``)."""
        return self.meta.one_video

    @property
    def dim(self) -> int:
        """Width of the search vectors."""
        return self.meta.embedding_dim

    @property
    def providers(self) -> list[str]:
        """The execution providers the session runs on, preferred first."""
        return list(self.session.get_providers())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """B sentences -> (B, dim) float32 search vectors.

        Raises:
            ValueError: an empty sentence, or one that leaves no word piece (names its position).
        """
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        inputs = graph_inputs(self.tokenizer, texts)
        (queries,) = self.session.run(None, inputs)
        return np.ascontiguousarray(queries, dtype=np.float32)
