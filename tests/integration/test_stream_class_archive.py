"""The stream job's driver JVM writes its class-data archive when it stops, and the next
start maps it (streaming/class_archive.py), against real Kafka, Cassandra and Spark."""

from __future__ import annotations

from pathlib import Path

from backend.settings import Settings
from harness.process import StreamJob


def _jvm(pid: int) -> int:
    """The driver JVM: the job's child that runs java (spark-submit execs it)."""
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        if b"SparkSubmit" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError(f"no driver JVM under pid {pid}")


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_written_at_a_stop_then_mapped_at_the_next_start(
        isolated_settings: Settings, db, tmp_path: Path) -> None:
    settings = isolated_settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    archives = settings.cache_dir / "class-archives"
    job = StreamJob(settings, tmp_path / "stream.log",
                    command=("stream", "run", "--no-risk", "--no-persist"))

    job.start()
    try:
        flags = Path(f"/proc/{_jvm(job.pid)}/cmdline").read_bytes().decode().split("\0")
        assert any(f.startswith("-XX:ArchiveClassesAtExit=") for f in flags), flags
        # The job's JIT thresholds reach its JVM, which started with them.
        jit = settings.spark.job_jit_options.split()
        assert jit and set(jit) <= set(flags), flags
    finally:
        job.stop(timeout=120)
    assert job.proc.returncode == 0, job.tail()
    written = list(archives.glob("*.jsa"))
    assert [p.name.startswith("icu-vitals-") for p in written] == [True], sorted(
        archives.iterdir())
    assert not list(archives.glob("*.part")), "a finished archive is put in place"

    job.start()
    try:
        assert str(written[0]) in _maps(_jvm(job.pid)), "the JVM maps the archive"
    finally:
        job.stop()
    assert job.proc.returncode == 0, job.tail()
    assert list(archives.glob("*.jsa")) == written, "a mapped archive is kept, not rewritten"


def test_a_stop_while_the_queries_start_is_a_clean_stop(
        isolated_settings: Settings, db, tmp_path: Path) -> None:
    """SIGTERM the moment the alarm query runs (the persist query is then usually still
    starting; before the stop handlers were installed first, the job died of it, -15):
    the job stops what it started, exits 0 and writes its archive."""
    settings = isolated_settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    job = StreamJob(settings, tmp_path / "stream.log", command=("stream", "run", "--no-risk"))

    job.start()
    job.stop(timeout=120)
    assert job.proc.returncode == 0, job.tail()
    assert list((settings.cache_dir / "class-archives").glob("*.jsa")), "archive written"
