"""Cross-modal teachers of the common space: DRN's and FIAN's scores over FVMR's 2D map.

FVMR distils a softened matching-score target over each video's proposals into the fast path
(its Eq. 9, with the semantic-role-tree teacher q). Its paper names stronger teachers as future
work; here the cross-modal rerankers are those teachers. A reranker does not score FVMR's grid:
DRN regresses one box per pyramid location and FIAN moves its anchors, so a teacher's map over
the grid is

    t_p = max_k  s_k * IoU(b_k, p)

over the teacher's candidate moments b_k with probability s_k: a proposal is as good as the best
teacher moment it overlaps, discounted by the overlap. (Our choice: the papers give no mapping;
this is the soft IoU labelling 2D-TAN and FVMR use for ground truth, with the teacher's moments
and scores in place of the annotated window.)

The maps are computed once per teacher checkpoint for every training pair (real sentences and
``--extra`` pairs) and stored in one ``.npz`` file (``moment-search train teacher-maps``); a run
names its files in ``TrainConfig.teacher_maps``. Each map is sharpened into a distribution over
the proposals as peaked as the ground truth's (:func:`target_logits`); several teachers together
give one target, the mean of their distributions.

The teachers were trained on the same training videos, so on them they score closer to the
ground truth than they would on unseen videos; what they add over the labels is how they rank
the near misses, which is what the soft target carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..errors import DataError, InputError
from ..geometry.proposals import num_proposals, proposal_spans
from ..geometry.spans import temporal_iou
from ..search.rerank import RerankVideo

FORMAT = "moment-search teacher maps 1"
FLOOR = 1e-6  # probability given to proposals no teacher moment overlaps (finite logits)


@dataclass
class TeacherMaps:
    """One teacher's map over the 2D-map proposals of every training pair."""

    qids: list[str]
    maps: np.ndarray  # (Q, P) float32 in [0, 1]
    n_clips: int
    teacher: str  # the reranker's name
    model: str  # the checkpoint it was loaded from
    durations: np.ndarray | None = None  # (Q,) seconds of each pair's video (a fingerprint)

    def by_qid(self) -> dict[str, np.ndarray]:
        """``qid -> (P,) map``."""
        return dict(zip(self.qids, self.maps, strict=True))


def proposal_map(candidates: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(P,) ``max_k s_k * IoU(b_k, p)`` of a reranker's ``(K, 3) [start_s, end_s, s]`` over
    the proposals ``spans`` (P, 2), in seconds."""
    if len(candidates) == 0:
        return np.zeros(len(spans), dtype=np.float32)
    iou = temporal_iou(spans, candidates[:, :2])  # (P, K)
    return (iou * candidates[None, :, 2]).max(axis=1).astype(np.float32)


def score_pairs(reranker, corpus: Corpus, store: FeatureStore, n_clips: int,
                progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(Q, P) teacher maps of every query of ``corpus`` that has windows, in corpus order.

    Queries are scored grouped by video, so each video is read and pooled once.
    """
    queries = [q for q in corpus.queries if q.windows]
    maps = np.zeros((len(queries), num_proposals(n_clips)), np.float32)
    order = sorted(range(len(queries)), key=lambda i: queries[i].video_id)
    video = None
    for done, i in enumerate(order, start=1):
        query = queries[i]
        if video is None or video.video_id != query.video_id:
            meta = corpus.video(query.video_id)
            video = RerankVideo(query.video_id, store.load(query.video_id), meta.duration,
                                meta.feature_rate)
            spans = proposal_spans(n_clips, meta.duration)
        maps[i] = proposal_map(reranker.score_videos(query.text, [video])[0], spans)
        if progress is not None:
            progress(done, len(queries))
    return maps


def save_maps(path: str | Path, maps: TeacherMaps) -> Path:
    """Write ``maps`` to ``path`` (.npz) atomically.

    Raises:
        DataError: duplicate query ids or values outside [0, 1] (nothing is written).
    """
    _check(Path(path), maps, maps.n_clips)

    def write(temp: str) -> None:
        with open(temp, "wb") as handle:
            extra = {} if maps.durations is None else {"durations": maps.durations}
            np.savez(handle, format=np.array(FORMAT), qids=np.array(maps.qids),
                     maps=maps.maps.astype(np.float32), n_clips=np.array(maps.n_clips),
                     teacher=np.array(maps.teacher), model=np.array(maps.model), **extra)
    return atomic_write(path, write)


def load_maps(path: str | Path, n_clips: int) -> TeacherMaps:
    """Read a file written by :func:`save_maps` for an ``n_clips`` map.

    Raises:
        InputError: no such file.
        DataError: not a teacher-maps file, another map size, or bad values (naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"teacher maps {path}: no such file (make it with "
                         f"`moment-search train teacher-maps`)", parameter="teacher_maps")
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {name: data[name] for name in data.files}
    except (OSError, ValueError) as e:
        raise DataError(f"teacher maps {path}: not a readable .npz file ({e})") from e
    if str(fields.get("format", "")) != FORMAT:
        raise DataError(f"teacher maps {path}: not a teacher-maps file (expected format "
                        f"{FORMAT!r})")
    maps = TeacherMaps([str(q) for q in fields["qids"]], fields["maps"].astype(np.float32),
                       int(fields["n_clips"]), str(fields["teacher"]), str(fields["model"]),
                       fields["durations"].astype(np.float64) if "durations" in fields else None)
    _check(path, maps, n_clips)
    return maps


def _check(path: Path, maps: TeacherMaps, n_clips: int) -> None:
    expected = (len(maps.qids), num_proposals(n_clips))
    if maps.n_clips != n_clips or maps.maps.shape != expected:
        raise DataError(f"teacher maps {path}: made for a {maps.n_clips}-clip map, shape "
                        f"{maps.maps.shape}; this model has {n_clips} clips, expected "
                        f"shape {expected}")
    if maps.maps.size and (not np.isfinite(maps.maps).all() or maps.maps.min() < 0
                           or maps.maps.max() > 1):
        raise DataError(f"teacher maps {path}: values must be finite and in [0, 1]")
    if maps.durations is not None and (maps.durations.shape != (len(maps.qids),)
                                       or not np.isfinite(maps.durations).all()):
        raise DataError(f"teacher maps {path}: durations must be one finite number a pair")
    if len(set(maps.qids)) != len(maps.qids):
        raise DataError(f"teacher maps {path}: a query id appears more than once")


def target_logits(files: Sequence[str | Path], n_clips: int, labels: Mapping[str, np.ndarray],
                  durations: Mapping[str, float] | None = None
                  ) -> tuple[dict[str, np.ndarray], list[float]]:
    """``(qid -> (P,) target logits, each file's temperature)`` for every id of ``labels``.

    A raw map is nearly flat (DRN's maps of the 2,323 Charades-STA training sentences: mean
    entropy 4.73 nats over 136 proposals, uniform being 4.91), because every proposal
    overlapping any scored moment gets some mass. Each teacher's map is therefore sharpened,
    ``softmax(log(t) / tau)``, with tau fitted on the training pairs so that its mean entropy
    equals that of the normalised soft IoU labels (``labels``; 3.24 nats for those
    sentences): the target is as peaked as the ground truth's, and no validation figure is
    involved. The target is the mean of the teachers' sharpened maps.

    ``durations`` (qid -> seconds of the pair's video), when given, is checked against the
    durations a file stores, so a file made for another corpus that reuses the query ids fails.

    Raises:
        InputError, DataError: see :func:`load_maps`; a training pair missing from a file
            (the file was made for other data or other ``--extra`` pairs), or one whose video
            has another duration there.
    """
    qids = list(labels)
    goal = mean_entropy(np.stack([labels[q] for q in qids]) + FLOOR)
    mean, temperatures = 0.0, []
    for path in files:
        maps = load_maps(path, n_clips)
        check_durations(path, maps, durations or {})
        table = maps.by_qid()
        missing = [q for q in qids if q not in table]
        if missing:
            raise DataError(f"teacher maps {path}: no map for {len(missing)} of the "
                            f"{len(qids)} training pairs (e.g. {missing[0]!r}); make it again "
                            f"with the same --data and --extra as this run")
        logs = np.log(np.stack([table[q] for q in qids]) + FLOOR)
        tau = matched_temperature(logs, goal)
        temperatures.append(tau)
        mean = mean + softmax(logs / tau) / len(files)
    logits = np.log(mean + FLOOR).astype(np.float32)
    return dict(zip(qids, logits, strict=True)), temperatures


def check_durations(path: str | Path, maps: TeacherMaps, durations: Mapping[str, float]) -> None:
    """Raises DataError: a pair whose video is not as long in the file as in the run."""
    if maps.durations is None:
        return
    for qid, stored in zip(maps.qids, maps.durations, strict=True):
        if qid in durations and abs(float(stored) - durations[qid]) > 0.01:
            raise DataError(f"teacher maps {path}: pair {qid!r} was scored on a video of "
                            f"{float(stored):.2f} s, this run's is {durations[qid]:.2f} s: "
                            f"the file was made for other data")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (Q, P) logits."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mean_entropy(weights: np.ndarray) -> float:
    """Mean entropy (nats) of the rows of (Q, P) non-negative weights, each normalised."""
    p = weights / weights.sum(axis=1, keepdims=True)
    return float(np.mean(-(p * np.log(np.clip(p, 1e-30, None))).sum(axis=1)))


def matched_temperature(logs: np.ndarray, goal: float, steps: int = 40) -> float:
    """tau with ``mean_entropy(softmax(logs / tau)) == goal`` (bisection on log tau; entropy
    grows with tau), clipped to [1e-3, 1e3]."""
    low, high = np.log(1e-3), np.log(1e3)
    for _ in range(steps):
        middle = (low + high) / 2
        if mean_entropy(softmax(logs / np.exp(middle))) > goal:
            high = middle
        else:
            low = middle
    return float(np.exp((low + high) / 2))


def make_teacher_maps(teacher: str, model_dir: str | Path | None, data_dir: str | Path,
                      n_clips: int, extras: Sequence[str] = (), train_split: str = "train",
                      feature_rate: float | None = None,
                      charades_dir: str | Path | None = None,
                      progress: Callable[[int, int], None] | None = None) -> TeacherMaps:
    """The maps of reranker ``teacher`` (from ``model_dir``, default its shipped checkpoint)
    over every pair an FVMR run with these settings trains on: ``train_split`` of ``data_dir``
    plus its ``extras`` (a ``--fold`` run uses a subset of them).

    Raises:
        UnknownNameError: ``teacher`` is no reranker. InputError, CorpusError: bad data.
    """
    from ..data.corpus_dir import open_corpus
    from ..pretrained import default_model_dir
    from ..search.rerank import load_reranker
    from .extras import default_charades_dir, parse_extra, with_extras

    reranker = load_reranker(teacher, model_dir, device="auto")
    corpus, store = open_corpus(data_dir, split=train_split, feature_rate=feature_rate)
    specs = [parse_extra(text) for text in extras]
    corpus, _ = with_extras(corpus, specs, charades_dir or default_charades_dir(data_dir))
    maps = score_pairs(reranker, corpus, store, n_clips, progress)
    model = str(model_dir) if model_dir is not None else str(default_model_dir(teacher))
    scored = [q for q in corpus.queries if q.windows]
    return TeacherMaps([q.qid for q in scored], maps, n_clips, teacher, model,
                       np.array([corpus.video(q.video_id).duration for q in scored]))
