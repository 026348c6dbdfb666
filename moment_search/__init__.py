"""moment-search: find moments in a video corpus from a sentence.

The fast path embeds every 2D-map proposal of every video once (FVMR common space) and answers a
query by inner products in a FAISS index; heavier cross-modal models rerank the top videos.

Imports point one way: a package imports only the packages listed before it.

    errors, failpoints, atomic, device, registry, pretrained, ray_cluster
                 the error base, atomic writes, the device, model names (imported on use)
    geometry     spans, IoU, NMS, 2D-map proposals
    data         corpus, annotation readers, feature stores, prediction file formats
    metrics      R@n IoU=m, mIoU, corpus and video retrieval metrics
    text         MiniLM token embeddings, semantic role trees
    models       one file per model (FVMR, PLN, FIAN, DRN, LPNet, video-text)
    embed        moment and query encoders; the ONNX query encoder and its export
    indexer      store, catalog, vector backends; build, add, verify, repair
    search       Searcher, rerankers, the cascade, batch search
    train        datasets, losses, trainers (validate with metrics)
    eval         localizers, the evaluation runner, the prior, MVMR positives
    ingest       video files -> a corpus folder
    serve        the HTTP app over a Searcher
    benchmarks, cli
                 thin clients (the CLI runs benchmarks, never the reverse)

Within a line too, a name imports only the names before it. ``tests/test_import_order.py``
checks the order.
"""

__version__ = "0.1.0"
