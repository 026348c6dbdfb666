"""Extra supervision from the official Charades annotations, for training only.

* :func:`action_queries`: every action segment of a video becomes a (sentence, window) pair whose
  sentence is the class phrase written the way Charades-STA sentences read
  (``c008 Opening a door`` -> ``"person opening a door."``).
* :func:`video_texts`: the texts that describe a whole video (its descriptions and its script,
  split into sentences), for the video-level relevance model.

Only the videos passed in are used: callers pass the training corpus, so validation videos never
contribute a row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .corpus import Corpus, Query
from .readers.charades_csv import CharadesVideo

ALTERNATIVE = re.compile(r"(\w+)/(\w+(?:/\w+)*)")
SOMEONE = re.compile(r"^someone\s+(is\s+)?", re.IGNORECASE)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def action_sentence(phrase: str) -> str:
    """A Charades class phrase as a Charades-STA-like sentence.

    ``"Holding a phone/camera"`` -> ``"person holding a phone."``; ``"Someone is cooking
    something"`` -> ``"person is cooking something."``; ``"Holding a towel/s"`` -> ``"person
    holding a towel."``; ``"Watching/Reading/Looking at a book"`` -> ``"person looking at a
    book."``. Of object alternatives the first is kept (plural suffixes such as ``/s`` and
    ``/es`` are dropped), since STA sentences name one object; of verb alternatives at the start
    of the phrase the last, whose preposition the phrase keeps.
    """
    phrase = phrase.strip()
    head = ALTERNATIVE.match(phrase)
    if head is not None:
        phrase = head[0].split("/")[-1] + phrase[head.end():]
    text = ALTERNATIVE.sub(lambda m: m[1], phrase)
    text = SOMEONE.sub(lambda m: "person " + ("is " if m[1] else ""), text)
    text = text[0].lower() + text[1:] if text else text
    if not text.startswith("person "):
        text = "person " + text
    return text.rstrip(".") + "."


def action_queries(corpus: Corpus, annotations: dict[str, CharadesVideo],
                   classes: dict[str, str]) -> list[Query]:
    """One query per action segment of every video of ``corpus`` found in ``annotations``.

    Windows are clipped to the corpus video's duration; a segment that is empty after clipping
    is left out. Query ids are ``"action-<video>-<n>"`` (n counts the video's segments).

    Args:
        corpus: the videos to draw from (the training split).
        annotations: ``video_id -> CharadesVideo`` (see ``read_charades_csv``).
        classes: ``cNNN -> phrase``.
    """
    queries = []
    for video in corpus:
        record = annotations.get(video.video_id)
        if record is None:
            continue
        for n, action in enumerate(record.actions):
            start, end = max(0.0, action.start), min(action.end, video.duration)
            if end <= start:
                continue
            queries.append(Query(f"action-{video.video_id}-{n}",
                                 action_sentence(classes[action.class_id]),
                                 video.video_id, ((start, end),)))
    return queries


def video_texts(video_ids: Iterable[str], annotations: dict[str, CharadesVideo]
                ) -> dict[str, list[str]]:
    """``video_id -> sentences`` describing the whole video, from its descriptions and script.

    Descriptions and the script are split into sentences (queries are single sentences); those
    of fewer than three words are dropped.

    Videos absent from ``annotations`` get an empty list.
    """
    texts = {}
    for video_id in video_ids:
        record = annotations.get(video_id)
        if record is None:
            texts[video_id] = []
            continue
        documents = [*record.descriptions, record.script]
        texts[video_id] = [sentence.strip() for document in documents
                           for sentence in SENTENCE_END.split(document)
                           if len(sentence.split()) >= 3]
    return texts
