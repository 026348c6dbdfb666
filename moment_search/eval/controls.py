"""Controls for the position prior (Otani et al., BMVC 2020): break the query-video pairing.

* ``shuffled-video``: every query is answered on another video's features (its own ground truth
  and duration kept): what the model loses is what it takes from the video.
* ``shuffled-query``: every query's sentence is replaced by a sentence of another video: what the
  model loses is what it takes from the text.

Both use a seeded derangement over videos, so no query keeps its own video or a sentence of it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..data.corpus import Corpus
from ..data.features import FeatureStore
from ..errors import InputError

CONTROLS = ("shuffled-video", "shuffled-query")


def video_derangement(video_ids: list[str], seed: int = 0) -> dict[str, str]:
    """A seeded map video -> another video (a cyclic shift of a random order: no fixed point)."""
    if len(video_ids) < 2:
        raise InputError("a control needs at least two videos")
    order = np.random.default_rng(seed).permutation(len(video_ids))
    shuffled = [video_ids[i] for i in order]
    return {a: b for a, b in zip(shuffled, shuffled[1:] + shuffled[:1], strict=True)}


class SwappedStore:
    """A feature store that answers for video A with the features of ``mapping[A]``."""

    def __init__(self, store: FeatureStore, mapping: dict[str, str]):
        self.store = store
        self.mapping = mapping

    def load(self, video_id: str) -> np.ndarray:
        """The features of the video that ``video_id`` is paired with."""
        return self.store.load(self.mapping.get(video_id, video_id))

    def __contains__(self, video_id: str) -> bool:
        return video_id in self.store


def apply_control(corpus: Corpus, store: FeatureStore, control: str | None, seed: int = 0
                  ) -> tuple[Corpus, FeatureStore]:
    """The corpus and store as the control sees them (unchanged for ``None``)."""
    if control is None:
        return corpus, store
    if control not in CONTROLS:
        raise InputError(f"unknown control {control!r}; expected one of {CONTROLS}")
    mapping = video_derangement(sorted(corpus.videos), seed)
    if control == "shuffled-video":
        return corpus, SwappedStore(store, mapping)
    sentences = corpus.queries_by_video()
    rng = np.random.default_rng(seed + 1)
    queries = []
    for query in corpus.queries:
        donors = sentences.get(mapping[query.video_id]) or [query]
        queries.append(replace(query, text=donors[int(rng.integers(len(donors)))].text))
    return Corpus(dict(corpus.videos), queries, corpus.name), store
