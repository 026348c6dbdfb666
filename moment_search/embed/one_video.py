"""How a search within one video weighs the columns of the query's search vector.

Across videos the vector is ``[phi_s(s), sqrt(beta) t, 1]`` (``models.fvmr``); within one video
two of its parts are weighed otherwise:

- the constant column (the per-cell prior and the hub correction) is set to 0: the prior only
  weighs cells against those of other videos and costs single-video accuracy, the hub
  correction is constant within a video;
- the video-text columns ``sqrt(beta) t`` are multiplied by ``text_scale`` (the checkpoint's
  ``one_video_text_scale``): beta was chosen for ranking videos against each other, while
  within one video only the moment matters (``benchmark one-video-weight`` chooses the scale
  on train folds).

The searcher, the single-video evaluator and the benchmarks all apply this one rule. Numpy only:
the query path runs it without PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneVideoWeights:
    """The rule of the module docstring for one model's search vectors."""

    constant_column: int | None = None  # set to 0 (None: the vectors have none)
    text_columns: tuple[int, int] | None = None  # [start, stop) of sqrt(beta) t (None: none)
    text_scale: float = 1.0  # what those columns are multiplied by

    def changes_nothing(self) -> bool:
        """True when :meth:`apply` returns the vectors as they are."""
        return self.constant_column is None and (self.text_columns is None
                                                 or self.text_scale == 1.0)

    def apply(self, queries: np.ndarray) -> np.ndarray:
        """(B, D) query vectors -> the (B, D) vectors a search within one video runs with. The
        caller's array (e.g. the query cache's) is never changed: a weighed copy is returned, or
        the array itself when the rule changes nothing."""
        if self.changes_nothing():
            return queries
        weighed = np.array(queries, copy=True)
        if self.constant_column is not None:
            weighed[:, self.constant_column] = 0.0
        if self.text_columns is not None and self.text_scale != 1.0:
            start, stop = self.text_columns
            weighed[:, start:stop] *= self.text_scale
        return weighed
