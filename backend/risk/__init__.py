"""Sepsis deterioration risk model: data, features, training, registry, evaluation.

Layout (each module imports only what it needs, so the streaming scorer never imports
pyspark to score one patient):

* ``data``      PhysioNet/CinC 2019 set A: unpack into the cache, load as one frame.
* ``features``  pure function ``hourly_features(history)``: features per patient-hour
                from the hours up to and including that hour (no look-ahead).
* ``split``     seeded, stratified train/validation/test split by patient.
* ``utility``   the Challenge's normalised utility score (Reyna et al. 2020).
* ``metrics``   AUROC/AUPRC, sensitivity/specificity, calibration, alert burden, lead time.
* ``baselines`` NEWS2, qSOFA, SIRS and the reference rule on the same hourly data.
* ``model``     ``RiskModel``: the trained trees scored in NumPy (no Spark needed).
* ``train``     Spark MLlib gradient-boosted trees, threshold chosen on validation.
* ``registry``  versions on disk with metadata and an active pointer; Cassandra mirror.
* ``evaluate``  the side-by-side comparison on held-out test patients.
* ``cli``       ``icu model train|evaluate|list|activate|rollback|mirror``.

The streaming scorer uses::

    from backend.risk.registry import load_active
    model = load_active(settings)            # RiskModel or None
    risk = model.score_history(history)      # history: one row per hour, see features
    alarm = risk >= model.threshold
"""
