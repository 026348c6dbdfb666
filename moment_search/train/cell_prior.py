"""A per-cell score prior that takes the position and length bias out of corpus search.

The fast path is trained within each video (FVMR's softmax over one video's proposals), so
nothing ties the scores of one 2D-map cell in one video to those of another cell in another
video. Across a corpus the cells that start at 0:00 and the long ones win far more often than
the ground truth does (on val: 45% of top-1 moments start at 0 s, ground truth 19%). The prior
pi, one value per cell, is added to every proposal's score through the search vectors' constant
column (``FVMR.cell_prior``), so it costs nothing at query time.

It is fitted by iterative proportional fitting: search sentences over their videos (the shipped
prior: held-out train folds, each searched by a model trained without it; see
``benchmarks.position_bias``), compare how often each cell is the top-1 moment with how often it
is the ground truth's best cell, and move pi by ``rate`` x the log ratio, ``steps`` times;
``strength`` scales the result.
Because pi depends only on the cell, the top-1 cell under any pi is the argmax over cells of the
query's best score in each cell (over all videos), so each step is exact and cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..geometry.spans import temporal_iou

__all__ = ["PriorConfig", "best_cell_scores", "fit_cell_prior", "truth_cells", "with_cell_prior"]


@dataclass(frozen=True)
class PriorConfig:
    """The fitting rule. Only ``strength`` is chosen, by video-disjoint cross-validation on train
    (``benchmarks.position_bias``); ``steps`` and ``rate`` are fixed defaults, set before the
    first run and not tuned (15 damped steps: a partial correction, not a converged fit)."""

    steps: int = 15  # proportional-fitting steps
    rate: float = 0.05  # step size, per unit of log ratio
    strength: float = 1.0  # the fitted prior is scaled by this (0: no prior)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def best_cell_scores(queries: np.ndarray, moments: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(Q, P): each query's best score in each cell over all videos.

    Args:
        queries: (Q, D) search vectors. moments: (V, P, D) search vectors, proposal order.
    """
    n_videos, n_cells, width = moments.shape
    flat = moments.reshape(n_videos * n_cells, width)
    best = np.empty((len(queries), n_cells), np.float32)
    for start in range(0, len(queries), chunk):
        scores = queries[start:start + chunk] @ flat.T  # (q, V * P)
        best[start:start + chunk] = scores.reshape(-1, n_videos, n_cells).max(1)
    return best


def truth_cells(spans: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """(Q,): the cell with the highest IoU with each query's ground truth.

    Args:
        spans: (Q, P, 2) the proposal spans of each query's own video, seconds.
        windows: (Q, 2) ground-truth windows, seconds.
    """
    return np.array([temporal_iou(s, w[None]).ravel().argmax()
                     for s, w in zip(spans, windows, strict=True)])


def fit_cell_prior(best: np.ndarray, truth: np.ndarray, config: PriorConfig = PriorConfig()
                   ) -> np.ndarray:
    """(P,) pi, mean 0, from (Q, P) ``best_cell_scores`` and (Q,) ``truth_cells``.

    Raises:
        ValueError: no queries, or a truth cell outside the map.
    """
    n_cells = best.shape[1]
    if not len(best) or len(truth) != len(best) or truth.min() < 0 or truth.max() >= n_cells:
        raise ValueError(f"fit_cell_prior: {len(best)} score rows and {len(truth)} truth cells "
                         f"in [0, {n_cells}) expected, one per query")
    target = _histogram(truth, n_cells)
    prior = np.zeros(n_cells)
    for _ in range(config.steps):
        top = (best + prior).argmax(1)
        prior += config.rate * (np.log(target) - np.log(_histogram(top, n_cells)))
    prior = config.strength * (prior - prior.mean())
    return prior.astype(np.float32)


def _histogram(cells: np.ndarray, n_cells: int) -> np.ndarray:
    """Share of each cell, add-one smoothed (a cell never seen keeps a finite log)."""
    counts = np.bincount(cells, minlength=n_cells) + 1.0
    return counts / counts.sum()


def with_cell_prior(model, prior: np.ndarray | None):
    """A copy of an FVMR model whose search vectors carry ``prior`` (None: a copy without one,
    the base the prior is fitted on). The other weights are the model's own."""
    import dataclasses

    import torch

    from ..models.fvmr import FVMR

    config = dataclasses.replace(model.config, cell_prior=prior is not None)
    copy = FVMR(config).eval()
    state = {k: v for k, v in model.state_dict().items() if k != "proposal_prior"}
    missing, unexpected = copy.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"proposal_prior"}:
        raise RuntimeError(f"with_cell_prior: weights do not fit ({missing}, {unexpected})")
    if prior is not None:
        if prior.shape != (copy.n_proposals,) or not np.isfinite(prior).all():
            raise ValueError(f"a finite prior of {copy.n_proposals} cells expected, got shape "
                             f"{prior.shape}")
        copy.proposal_prior.copy_(torch.from_numpy(np.asarray(prior, np.float32)))
    return copy.to(next(model.parameters()).device)
