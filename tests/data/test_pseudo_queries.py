import pytest

from moment_search.data.corpus import Corpus, Video
from moment_search.data.pseudo_queries import action_queries, action_sentence, video_texts
from moment_search.data.readers.charades_csv import ActionSegment, CharadesVideo


@pytest.mark.parametrize("phrase, sentence", [
    ("Opening a door", "person opening a door."),
    ("Holding a phone/camera", "person holding a phone."),
    ("Holding a towel/s", "person holding a towel."),
    ("Putting a dish/es somewhere", "person putting a dish somewhere."),
    ("Someone is cooking something", "person is cooking something."),
    ("Watching/Reading/Looking at a book", "person looking at a book."),
    ("Taking/consuming some medicine", "person consuming some medicine."),
])
def test_action_sentence(phrase, sentence):
    assert action_sentence(phrase) == sentence


def record(video_id, *actions, descriptions=("A person opens a door. Then sits.",),
           script="Person laughs. Ok."):
    return CharadesVideo(video_id, 20.0, "Kitchen", script, descriptions, (), tuple(actions))


def test_action_queries_only_corpus_videos_and_clipped():
    corpus = Corpus(videos={"A": Video("A", 10.0)})
    annotations = {
        "A": record("A", ActionSegment("c1", 2.0, 15.0), ActionSegment("c2", 12.0, 14.0)),
        "B": record("B", ActionSegment("c1", 0.0, 3.0)),  # not in the corpus (a val video)
    }
    queries = action_queries(corpus, annotations, {"c1": "Opening a door", "c2": "Sitting"})
    assert [(q.qid, q.text, q.video_id, q.windows) for q in queries] == [
        ("action-A-0", "person opening a door.", "A", ((2.0, 10.0),))]  # c2 starts after 10 s


def test_video_texts_splits_sentences():
    annotations = {"A": record("A", script="The person laughs loudly. Ok.")}
    texts = video_texts(["A", "missing"], annotations)
    # "Then sits." and "Ok." have fewer than three words and are dropped
    assert texts == {"A": ["A person opens a door.", "The person laughs loudly."], "missing": []}
