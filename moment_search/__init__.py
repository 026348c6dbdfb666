"""moment-search: find moments in a video corpus from a sentence.

The fast path embeds every 2D-map proposal of every video once (FVMR common space) and answers a
query by inner products in a FAISS index; heavier cross-modal models rerank the top videos.
"""

__version__ = "0.1.0"
