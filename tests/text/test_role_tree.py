"""Tests of the FVMR semantic role tree on real sentences (spaCy's small English pipeline)."""

from __future__ import annotations

import json

import pytest

from moment_search.text import RoleTree, RoleTreeParser, Word
from moment_search.text.role_tree import MAX_NOUNS, MAX_VERBS

ACTIVITYNET_LONG = (
    "A man in a red shirt walks into the gym, picks up a heavy barbell from the rack, lifts it "
    "over his head, drops it on the floor and smiles at the people in the stands."
)


@pytest.fixture(scope="module")
def parser() -> RoleTreeParser:
    return RoleTreeParser(batch_size=8)


def parse_one(parser: RoleTreeParser, text: str) -> RoleTree:
    return parser.parse([text])[0]


def phrases(tree: RoleTree) -> dict[str, list[str]]:
    """``{verb text: [texts of its nouns]}``."""
    return {
        v.text: [tree.nouns[n].text for n in tree.nouns_of(i)] for i, v in enumerate(tree.verbs)
    }


def assert_spans_index_the_text(tree: RoleTree, text: str) -> None:
    for word in tree.verbs + tree.nouns:
        assert text[word.char_start : word.char_end] == word.text


def test_subject_and_object_hang_from_their_verb(parser):
    text = "person opens a cabinet"
    tree = parse_one(parser, text)
    assert [v.text for v in tree.verbs] == ["opens"]
    assert [n.text for n in tree.nouns] == ["person", "cabinet"]
    assert tree.edges == [(0, 0), (0, 1)] and not tree.pseudo_verb
    assert tree.nouns[1] == Word("cabinet", 15, 22)


def test_prepositional_object_links_through_its_preposition(parser):
    text = "a person is putting a book on a shelf."
    tree = parse_one(parser, text)
    assert phrases(tree) == {"putting": ["person", "book", "shelf"]}
    assert_spans_index_the_text(tree, text)


def test_particles_and_compounds_join_their_word(parser):
    tree = parse_one(parser, "person turns off the light in the closet door.")
    assert [v.text for v in tree.verbs] == ["turns off"]
    assert "closet door" in [n.text for n in tree.nouns]


def test_conjoined_verb_shares_the_subject(parser):
    tree = parse_one(parser, "person picks the book up and walks away.")
    assert phrases(tree) == {"picks": ["person", "book"], "walks": ["person"]}


def test_paper_example_splits_into_three_phrases(parser):
    text = (
        "the man leaves the ring and the wrestler approaches the other wrestler "
        "and beats him to the ground"
    )
    tree = parse_one(parser, text)
    found = phrases(tree)
    assert list(found) == ["leaves", "approaches", "beats"]
    assert found["leaves"] == ["man", "ring"]
    assert "ground" in found["beats"] and found["approaches"].count("wrestler") == 2
    assert_spans_index_the_text(tree, text)


def test_long_sentence_respects_the_limits(parser):
    doc = parser.nlp(ACTIVITYNET_LONG)
    assert sum(t.pos_ == "VERB" for t in doc) > MAX_VERBS
    assert sum(t.pos_ in {"NOUN", "PROPN"} for t in doc) > MAX_NOUNS
    tree = parse_one(parser, ACTIVITYNET_LONG)
    assert len(tree.verbs) == MAX_VERBS and len(tree.nouns) == MAX_NOUNS
    assert [v.text for v in tree.verbs] == ["walks", "picks up", "lifts", "drops"]
    assert {n for _, n in tree.edges} == set(range(MAX_NOUNS))
    assert phrases(tree)["picks up"] == [
        "man",
        "barbell",
        "rack",
    ]  # subject shared down the conjuncts
    assert tree.edges == sorted(set(tree.edges))
    assert_spans_index_the_text(tree, ACTIVITYNET_LONG)


def test_sentence_without_a_verb_gets_the_root_as_pseudo_verb(parser):
    tree = parse_one(parser, "two men on a boat.")
    assert tree.pseudo_verb and [v.text for v in tree.verbs] == ["men"]
    assert phrases(tree) == {"men": ["men", "boat"]}


def test_parse_keeps_order_and_caches(parser):
    texts = ["a dog runs.", "person opens a cabinet", "a dog runs."]
    trees = parser.parse(texts)
    assert trees[0] is trees[2] and [v.text for v in trees[1].verbs] == ["opens"]
    assert parser.parse(["a dog runs."])[0] is trees[0]


def test_unneeded_components_are_not_loaded(parser):
    assert "ner" not in parser.nlp.pipe_names and "lemmatizer" not in parser.nlp.pipe_names
    assert "parser" in parser.nlp.pipe_names


@pytest.mark.parametrize("bad", ["", "  \n", 3])
def test_parse_rejects_empty_text(parser, bad):
    with pytest.raises(ValueError, match="text 1"):
        parser.parse(["a dog runs.", bad])


def test_cache_round_trip_needs_no_parsing(parser, tmp_path, monkeypatch):
    texts = ["a person is putting a book on a shelf.", "two men on a boat.", ACTIVITYNET_LONG]
    expected = parser.parse(texts)
    path = tmp_path / "trees.json"
    parser.save_cache(path)
    parser.save_cache(path)  # overwriting is fine
    assert [p.name for p in tmp_path.iterdir()] == ["trees.json"]  # no temp file left
    fresh = RoleTreeParser()
    monkeypatch.setattr(RoleTreeParser, "nlp", property(lambda self: pytest.fail("parsed again")))
    assert fresh.load_cache(path) == parser.num_cached
    assert fresh.parse(texts) == expected


def test_load_cache_rejects_other_limits_and_junk(parser, tmp_path):
    parser.parse(["a dog runs."])
    path = tmp_path / "trees.json"
    parser.save_cache(path)
    with pytest.raises(ValueError, match="max_verbs"):
        RoleTreeParser(max_verbs=2).load_cache(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="trees.json"):
        parser.load_cache(path)
    path.write_text(json.dumps({"trees": []}))
    with pytest.raises(ValueError, match="no 'trees' object"):
        parser.load_cache(path)


def test_tree_dict_round_trip_and_validation():
    tree = RoleTree([Word("opens", 7, 12)], [Word("person", 0, 6)], [(0, 0)])
    assert RoleTree.from_dict(json.loads(json.dumps(tree.to_dict()))) == tree
    with pytest.raises(ValueError, match=r"edge \(1, 0\)"):
        RoleTree([Word("opens", 7, 12)], [Word("person", 0, 6)], [(1, 0)])
    with pytest.raises(ValueError, match="at least one verb"):
        RoleTree([], [])
    with pytest.raises(ValueError, match="0 <= start < end"):
        Word("x", 3, 3)


def test_missing_spacy_pipeline_names_what_to_install():
    with pytest.raises(ImportError, match="no_such_pipeline"):
        RoleTreeParser(model="no_such_pipeline").parse(["a dog runs."])
