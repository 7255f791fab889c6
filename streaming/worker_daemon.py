"""Spark's Python worker daemon, made cheap per task (``spark.python.daemon.module``).

Spark forks every Python worker from this daemon and, with worker reuse, runs one task
after another in each. pyspark's own daemon costs ~0.1 s of CPU per task before any of
our code runs, measured with py-spy on a 2-core machine (docs/benchmarks.md, "Stream
design"), for two reasons this module removes:

* Every task calls ``importlib.invalidate_caches()``, which makes each ``zipimporter``
  re-read its archive's directory. Spark puts ``pyspark.zip``, py4j's zip and the
  spark-core jar (5,221 entries) on the workers' ``sys.path``. pyspark is installed as a
  package anyway, so the archives are dropped from the path and the importer cache.
* After every task the daemon runs a full ``gc.collect()``, which walks every object of
  pandas, pyarrow and the evaluator. They are imported here, before the fork, and frozen
  (``gc.freeze``), so a collection only walks what the task itself allocated; the
  imports are also shared copy-on-write by every worker instead of repeated in each.
"""

from __future__ import annotations

import gc
import sys

_ARCHIVES = (".zip", ".jar")


def _drop_archives() -> None:
    sys.path[:] = [p for p in sys.path if not p.endswith(_ARCHIVES)]
    for path in [p for p in sys.path_importer_cache if p.endswith(_ARCHIVES)]:
        del sys.path_importer_cache[path]


def main() -> None:
    _drop_archives()
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import pyspark.sql.pandas.serializers
    import pyspark.worker  # noqa: F401
    from pyspark import daemon

    import streaming.alarm_evaluator  # noqa: F401  (the stateful step and all of backend it uses)

    gc.collect()
    gc.freeze()
    daemon.manager()


if __name__ == "__main__":
    main()
