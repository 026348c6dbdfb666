"""Both sides of the FVMR common space at inference time, below the indexer and the searcher.

``encoders``: the PyTorch moment and query encoders; ``onnx_encoder``: the exported query
encoder that runs without PyTorch; ``encoder_export`` / ``encoder_quantize`` / ``text_graph`` /
``encoder_check``: its export from a checkpoint, 8-bit variant, traced graph and agreement check;
``one_video``: how a search within one video weighs the query's columns.
"""
