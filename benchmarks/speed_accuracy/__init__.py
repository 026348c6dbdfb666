"""The speed-accuracy report, modelled on the FVMR paper's Table 1 and Figure 1.

``moment-search benchmark speed-accuracy --data DIR --split val --models fvmr,pln --out REPORT``
(or ``run.run(SpeedAccuracyConfig(...))``) writes ``report.json``, ``report.md``,
``speed_accuracy.png`` and ``scaling.png``:

* :mod:`.single_video`: TE / CML / NMS / ALL per query per video (median and p95, warm-up
  excluded) and R@{1,5}, IoU={0.3,0.5,0.7}, mIoU, for the prior and every model named;
* :mod:`.corpus`: over the split's videos, end-to-end latency and corpus R@k, IoU=m of the FVMR
  index alone, FVMR + each reranker on its top M videos, and each cross-modal model scanning
  every video (:mod:`.brute_force`): the ratio between them is the headline;
* :mod:`.scaling`: how both strategies' latency grows with the corpus (replicated real moment
  embeddings for the index; the scan measured on real videos and extrapolated beyond, labelled);
* :mod:`.presets`: small (the default, a few minutes on 2 cores), medium, large.

Each part checks what it times before timing it (see each module).
"""
