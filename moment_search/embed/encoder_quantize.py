"""An int8 query encoder beside the fp32 one: ``INDEX/encoder/text-int8.onnx``.

A :class:`QuantVariant` says how ``text.onnx`` is quantized by ``onnxruntime.quantization``:

* ``static``: QDQ graph, int8 activations with ranges calibrated on sentences (train sentences
  only: never the ones it is judged on), int8 weights per channel or per tensor;
* ``dynamic``: int8 weights, activation ranges measured per call (``quantize_dynamic``);
* ``weight_only``: 8-bit blockwise weights (``MatMulNBits``), activations left in fp32 or
  quantized per block at run time (``accuracy_level`` 4).

Each keeps the nodes matching its ``exclude`` patterns in fp32: MiniLM's embeddings, its last
layer, the attention-score products (the softmax's input and the product with its output) and
FVMR's own head (BiLSTM, phi_s, the video-text MLP). :func:`quantize_encoder` writes the graph,
measures its agreement with the fp32 graph on check sentences and records it in ``encoder.json``
(``precisions`` gains ``int8``); it never changes ``default_precision``: that is
:func:`set_default_precision`'s job, after :func:`accept_int8` has judged the ranking figures.

Measured on Charades-STA val (``reports/encoder_int8``, ``benchmarks/encoder_quantization``):
per-tensor activation ranges (dynamic and static QDQ alike) lose too much of MiniLM's outlier
channels (top-10 overlap with fp32 0.55-0.83); 8-bit blockwise weights with activations
quantized per block (:data:`DEFAULT_VARIANT`, blocks of 16) keep the ranking (overlap 0.957)
and encode ~1.5x faster than fp32 (p50, one thread). ``static-entropy`` equals MinMax here:
onnxruntime's entropy calibrator uses as many histogram bins as quantized bins (128) and
``quantize_static`` cannot change that.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .onnx_encoder import (
    GRAPH_FILE,
    QUANTIZED_FILES,
    TOKENIZER_FILE,
    EncoderError,
    EncoderMeta,
    OnnxQueryEncoder,
    graph_inputs,
    load_tokenizer,
)

PRECISION = "int8"
# node-name patterns (fnmatch; "*" also matches "/") of the parts of text.onnx kept in fp32
EMBEDDINGS = ("/transformer/embeddings/*",)
LAST_LAYER = ("/transformer/encoder/layer.5/*",)
ATTENTION_SCORES = ("/transformer/encoder/layer.*/attention/self/MatMul",
                    "/transformer/encoder/layer.*/attention/self/MatMul_1")
ATTENTION_PROJECTIONS = ("/transformer/encoder/layer.*/attention/*",)
FFN_OUTPUT = ("/transformer/encoder/layer.*/output/dense/MatMul",)
HEAD = ("/lstm/*", "/phi_s/*", "/text_mlp/*", "/video_text/*")
SENSITIVE = EMBEDDINGS + LAST_LAYER + ATTENTION_SCORES + HEAD
CALIBRATION_BATCH = 32  # sentences per calibration run


@dataclass(frozen=True)
class QuantVariant:
    """How ``text.onnx`` becomes ``text-int8.onnx`` (see the module docstring)."""

    name: str
    mode: str = "static"  # static (QDQ, calibrated) | dynamic | weight_only (MatMulNBits)
    per_channel: bool = True  # weights: one scale per output channel (else per tensor)
    exclude: tuple[str, ...] = SENSITIVE  # node-name patterns kept in fp32
    op_types: tuple[str, ...] | None = ("MatMul",)  # None: onnxruntime's default set
    calibration: str = "minmax"  # static only: minmax | entropy | percentile
    calibration_sentences: int = 256  # static only: the first n calibration sentences
    symmetric_activations: bool = False  # static only: zero point 0 for activations
    block_size: int = 32  # weight_only only: weights per scale
    accuracy_level: int = 4  # weight_only only: 0 fp32 compute, 4 int8 compute
    note: str = ""  # what it tests

    def __post_init__(self):
        if self.mode not in ("static", "dynamic", "weight_only"):
            raise InputError(f"variant {self.name!r}: mode {self.mode!r}; expected static, "
                             f"dynamic or weight_only")
        if self.calibration not in ("minmax", "entropy", "percentile"):
            raise InputError(f"variant {self.name!r}: calibration {self.calibration!r}; "
                             f"expected minmax, entropy or percentile")


VARIANTS = {v.name: v for v in (
    QuantVariant("dynamic-tensor", "dynamic", per_channel=False, exclude=(), op_types=None,
                 note="quantize_dynamic defaults: every MatMul/Gather/LSTM/Gemm, per tensor"),
    QuantVariant("dynamic-channel", "dynamic", exclude=(), op_types=None,
                 note="quantize_dynamic defaults, per-channel weights"),
    QuantVariant("dynamic-channel-keep", "dynamic",
                 note="dynamic, per channel, MiniLM MatMuls only (sensitive parts fp32)"),
    QuantVariant("static-minmax", note="QDQ, MinMax calibration, sensitive parts fp32"),
    QuantVariant("static-percentile", calibration="percentile",
                 note="QDQ, 99.999th-percentile ranges"),
    QuantVariant("static-entropy", calibration="entropy", note="QDQ, KL-entropy ranges"),
    QuantVariant("static-minmax-keepffn", exclude=SENSITIVE + FFN_OUTPUT,
                 note="QDQ MinMax, also the FFN output projections (GELU outliers) fp32"),
    QuantVariant("weight-only-b32", "weight_only", exclude=EMBEDDINGS + HEAD,
                 note="MatMulNBits 8-bit, blocks of 32, int8 compute (accuracy_level 4)"),
    QuantVariant("weight-only-b128", "weight_only", exclude=EMBEDDINGS + HEAD, block_size=128,
                 note="MatMulNBits 8-bit, blocks of 128, int8 compute"),
    QuantVariant("weight-only-b16", "weight_only", exclude=EMBEDDINGS + HEAD, block_size=16,
                 note="MatMulNBits 8-bit, blocks of 16, int8 compute"),
    QuantVariant("weight-only-b32-keepattn", "weight_only",
                 exclude=EMBEDDINGS + HEAD + ATTENTION_PROJECTIONS,
                 note="MatMulNBits 8-bit, blocks of 32, attention Q/K/V/output projections fp32"),
    QuantVariant("weight-only-b32-keepffn", "weight_only", exclude=EMBEDDINGS + HEAD + FFN_OUTPUT,
                 note="MatMulNBits 8-bit, blocks of 32, FFN output projections fp32"),
    QuantVariant("weight-only-b32-fp32", "weight_only", exclude=EMBEDDINGS + HEAD,
                 accuracy_level=0, note="MatMulNBits 8-bit, blocks of 32, fp32 compute"),
)}
# accepted on val with the closest top 10 to fp32's among the fast ones (reports/encoder_int8,
# where b32 is 0.05 ms faster at p50 and keeps the top 10 a little less: 0.964 against 0.966)
DEFAULT_VARIANT = VARIANTS["weight-only-b16"]


def quantize_encoder(folder: str | Path, calibration_texts: Sequence[str],
                     variant: QuantVariant = DEFAULT_VARIANT,
                     check_texts: Sequence[str] = ()) -> dict:
    """Write ``folder/text-int8.onnx`` from ``folder/text.onnx`` and record it in encoder.json.

    Args:
        folder: an encoder folder (``INDEX_DIR/encoder``) holding the fp32 graph.
        calibration_texts: sentences whose activation ranges calibrate a static variant
            (train sentences: never the ones it is evaluated on); unused by the others.
        variant: how to quantize (see :data:`VARIANTS`).
        check_texts: sentences to compare int8 with fp32 on; the fp32 export's
            ``CHECK_SENTENCES`` are always added.

    Returns:
        ``{"variant", "file", "bytes", "check": {n, min_cosine, mean_cosine, worst}}``, the
        record added to ``encoder.json``'s ``check["int8"]``.

    Raises:
        EncoderError: a folder without an fp32 graph.
        ValueError: a static variant without calibration sentences.
    """
    from .encoder_check import CHECK_SENTENCES, agreement

    folder = Path(folder)
    meta = EncoderMeta.read(folder)
    source = folder / GRAPH_FILE
    if not source.is_file():
        raise EncoderError(f"{source} is missing; export the encoder first")
    if variant.mode == "static" and not calibration_texts:
        raise InputError(f"variant {variant.name!r} is calibrated: give calibration sentences")
    target = folder / QUANTIZED_FILES[PRECISION]
    with tempfile.TemporaryDirectory(prefix=".quantize.", dir=folder) as work:
        staged = Path(work) / target.name
        write_quantized(source, staged, variant, calibration_texts[:variant.calibration_sentences],
                        folder / TOKENIZER_FILE, meta.max_tokens)
        os.replace(staged, target)
    texts = [*dict.fromkeys([*check_texts, *CHECK_SENTENCES])]
    candidate = GraphEncoder(target, folder / TOKENIZER_FILE, meta.max_tokens)
    check = agreement(OnnxQueryEncoder(folder, "fp32"), candidate, texts)
    record = {"variant": variant.name, "settings": asdict(variant), "file": target.name,
              "bytes": target.stat().st_size, "check": check}
    _record_int8(folder, record)
    return record


def write_quantized(source: Path, target: Path, variant: QuantVariant,
                    calibration_texts: Sequence[str], tokenizer_path: Path,
                    max_tokens: int) -> None:
    """Quantize the graph ``source`` into ``target`` as ``variant`` says (no bookkeeping)."""
    excluded = excluded_nodes(source, variant.exclude)
    if variant.mode == "weight_only":
        _weight_only(source, target, variant, excluded)
        return
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static

    op_types = list(variant.op_types) if variant.op_types else None
    if variant.mode == "dynamic":
        quantize_dynamic(source, target, op_types_to_quantize=op_types,
                         per_channel=variant.per_channel, weight_type=QuantType.QInt8,
                         nodes_to_exclude=excluded)
        return
    from onnxruntime.quantization import CalibrationMethod, QuantFormat

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    tokenizer = load_tokenizer(tokenizer_path, max_tokens)
    with tempfile.TemporaryDirectory(prefix=".calibrate.", dir=target.parent) as cache:
        quantize_static(
            source, target, SentenceReader(tokenizer, calibration_texts, max_tokens),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
            per_channel=variant.per_channel, activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method=methods[variant.calibration],
            calibration_cache_path=Path(cache) / "ranges",
            extra_options={"ActivationSymmetric": variant.symmetric_activations,
                           "WeightSymmetric": True, "CalibMovingAverage": False,
                           "CalibTensorRangeSymmetric": variant.symmetric_activations})


def _weight_only(source: Path, target: Path, variant: QuantVariant, excluded: list[str]) -> None:
    """8-bit blockwise weights (``MatMulNBits``) for the MatMuls with a constant weight."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    # it logs every node it skips at INFO on the root handler: keep index builds quiet
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(block_size=variant.block_size, is_symmetric=True,
                                          accuracy_level=variant.accuracy_level, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=8,
                                     block_size=variant.block_size, is_symmetric=True,
                                     accuracy_level=variant.accuracy_level,
                                     nodes_to_exclude=excluded, algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


def excluded_nodes(graph: Path, patterns: Sequence[str]) -> list[str]:
    """Names of the nodes of ``graph`` matching any of ``patterns`` (fnmatch)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return [node.name for node in model.graph.node
            if any(fnmatch.fnmatchcase(node.name, p) for p in patterns)]


class SentenceReader:
    """``CalibrationDataReader`` over sentences: the four int64 inputs of ``text.onnx`` for
    batches of :data:`CALIBRATION_BATCH` sentences, in order, every batch padded to the token
    limit (the histogram calibrators stack all batches' activations, so shapes must agree)."""

    def __init__(self, tokenizer, texts: Sequence[str], max_tokens: int,
                 batch: int = CALIBRATION_BATCH):
        tokenizer.enable_padding(length=max_tokens + 2)
        self.batches: Iterator[dict[str, np.ndarray]] = (
            _padded(graph_inputs(tokenizer, texts[i:i + batch]), max_tokens)
            for i in range(0, len(texts), batch))

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch's inputs, None when all are read."""
        return next(self.batches, None)


def _padded(inputs: dict[str, np.ndarray], max_tokens: int) -> dict[str, np.ndarray]:
    """``token_index`` / ``token_mask`` (B, L) right-padded with zeros to (B, max_tokens)."""
    for name in ("token_index", "token_mask"):
        inputs[name] = np.pad(inputs[name], ((0, 0), (0, max_tokens - inputs[name].shape[1])))
    return inputs


class GraphEncoder:
    """Sentences -> vectors through one graph file, whatever encoder.json lists (for checks)."""

    def __init__(self, graph: Path, tokenizer_path: Path, max_tokens: int, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(graph), options,
                                                    providers=["CPUExecutionProvider"])
        self.tokenizer = load_tokenizer(tokenizer_path, max_tokens)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """B sentences -> (B, D) float32."""
        (queries,) = self.session.run(None, graph_inputs(self.tokenizer, texts))
        return np.asarray(queries, dtype=np.float32)


def _record_int8(folder: Path, record: dict) -> None:
    """Add ``int8`` to encoder.json's precisions and its check record (atomic rewrite)."""
    meta = EncoderMeta.read(folder)
    check = dict(meta.check or {})
    check[PRECISION] = record
    dataclasses.replace(meta, precisions=tuple(dict.fromkeys([*meta.precisions, PRECISION])),
                        check=check).write(folder)


def set_default_precision(folder: str | Path, precision: str) -> EncoderMeta:
    """Make ``precision`` the graph ``OnnxQueryEncoder`` opens by default (encoder.json is
    rewritten atomically).

    Raises:
        EncoderError: a precision the folder holds no graph of.
    """
    folder = Path(folder)
    meta = EncoderMeta.read(folder)
    if precision not in meta.precisions:
        raise EncoderError(f"{folder}: no {precision} graph (it holds "
                           f"{', '.join(meta.precisions)}); quantize the encoder first")
    updated = dataclasses.replace(meta, default_precision=precision)
    updated.write(folder)
    return updated


@dataclass(frozen=True)
class RankingFigures:
    """What the acceptance rule judges, for one encoder on val (percent, 0-100)."""

    top10_overlap: float  # mean |top-10 of this encoder ∩ top-10 of fp32| / 10, in [0, 1]
    r1_05: float  # single-video R1@0.5
    r1_07: float  # single-video R1@0.7
    r10_05: float  # corpus R10@0.5


MIN_OVERLAP = 0.95
MAX_DROP_POINTS = 0.5


def accept_int8(fp32: RankingFigures, int8: RankingFigures, min_overlap: float = MIN_OVERLAP,
                max_points: float = MAX_DROP_POINTS) -> tuple[bool, list[str]]:
    """The rule an int8 encoder must pass to become the default: top-10 overlap with fp32 >=
    ``min_overlap`` and each of R1@0.5, R1@0.7 (single video) and R10@0.5 (corpus) within
    ``max_points`` points of fp32's (either way).

    Returns:
        ``(accepted, reasons)``: one reason per failing figure, naming it and its values.
    """
    reasons = []
    if int8.top10_overlap < min_overlap:
        reasons.append(f"top-10 overlap {int8.top10_overlap:.3f} < {min_overlap}")
    for label, field in (("R1@0.5", "r1_05"), ("R1@0.7", "r1_07"), ("R10@0.5", "r10_05")):
        ours, theirs = getattr(int8, field), getattr(fp32, field)
        if abs(ours - theirs) > max_points:
            reasons.append(f"{label} {ours:.2f} vs fp32 {theirs:.2f} "
                           f"({ours - theirs:+.2f} points, limit ±{max_points})")
    return not reasons, reasons


