"""Raw video files -> a corpus folder: PyAV decoding at a fixed rate, a frame encoder (CLIP
ViT-B/32 through transformers, or a plug-in), and the ``features/`` + ``videos.jsonl`` writer."""
