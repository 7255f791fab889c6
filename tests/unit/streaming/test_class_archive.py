"""The driver JVM's class-data archive: its name follows what it depends on, a new one is
put in place only when its JVM ended by itself, and leftovers are cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from streaming.class_archive import UNUSED_DAYS, ClassArchive, fingerprint


@pytest.fixture
def jars(tmp_path: Path) -> list[str]:
    out = []
    for name in ("spark-sql-kafka.jar", "spark-cassandra-connector.jar"):
        path = tmp_path / "jars" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"PK" + name.encode())
        out.append(str(path))
    return out


def test_the_fingerprint_follows_the_jars_and_the_application(jars: list[str]) -> None:
    before = fingerprint("icu-vitals", jars)
    assert fingerprint("icu-vitals", jars) == before
    assert fingerprint("icu-persist", jars) != before
    assert fingerprint("icu-vitals", jars[:1]) != before
    Path(jars[0]).write_bytes(b"PK another build")
    assert fingerprint("icu-vitals", jars) != before


def test_the_options_map_an_archive_or_write_one(tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    writing = archive.java_options()
    assert f"-XX:ArchiveClassesAtExit={archive.part}" in writing
    assert str(os.getpid()) in archive.part.name
    archive.path.write_bytes(b"archive")
    assert f"-XX:SharedArchiveFile={archive.path}" in archive.java_options()


def _gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_are_removed_and_the_rest_kept(tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    archive.directory.mkdir(parents=True)
    dead_part = archive.directory / f"{archive.path.name}.{_gone_pid()}.part"
    live_part = archive.directory / f"icu-persist-0123.jsa.{os.getppid()}.part"
    stale = archive.directory / "icu-vitals-0123456789abcdef.jsa"
    in_use = archive.directory / "icu-vitals-fedcba9876543210.jsa"
    other_app = archive.directory / "icu-persist-0123456789abcdef.jsa"
    for path in (dead_part, live_part, stale, in_use, other_app):
        path.write_bytes(b"x")
    long_ago = time.time() - (UNUSED_DAYS + 1) * 86_400
    for path in (stale, other_app):
        os.utime(path, (long_ago, long_ago))

    archive.java_options()

    assert not dead_part.exists(), "a killed writer's part"
    assert not stale.exists(), "this application's archive of another class path, unused"
    assert in_use.exists(), "another installation's archive, used lately"
    assert live_part.exists(), "a running job's archive being written"
    assert other_app.exists(), "another application's archive"


def test_mapping_an_archive_marks_it_used(tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    archive.directory.mkdir(parents=True)
    archive.path.write_bytes(b"archive")
    long_ago = time.time() - (UNUSED_DAYS + 1) * 86_400
    os.utime(archive.path, (long_ago, long_ago))
    archive.java_options()
    assert archive.path.stat().st_mtime > time.time() - 60


def _jvm_stand_in(part: Path, exit_with: str) -> SimpleNamespace:
    """A process that, like the driver JVM, writes the archive when its stdin closes and
    then ends as told."""
    code = ("import os, signal, sys\n"
            "sys.stdin.read()\n"
            f"open({str(part)!r}, 'wb').write(b'archive')\n"
            f"{exit_with}\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    return SimpleNamespace(proc=proc)


@pytest.mark.parametrize("exit_with", ["sys.exit(0)", "sys.exit(143)"])
def test_an_archive_is_put_in_place_when_its_jvm_exits(
        tmp_path: Path, jars: list[str], exit_with: str) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    archive.java_options()
    assert archive.finish(_jvm_stand_in(archive.part, exit_with)) is True
    assert archive.path.read_bytes() == b"archive"
    assert not archive.part.exists()


def test_a_jvm_killed_mid_write_leaves_no_archive(tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    archive.java_options()
    killed = _jvm_stand_in(archive.part, "os.kill(os.getpid(), signal.SIGKILL)")
    assert archive.finish(killed) is False
    assert not archive.path.exists()
    assert not archive.part.exists()


def test_a_jvm_that_does_not_exit_is_not_waited_for_forever(
        tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    archive.java_options()
    stuck = _jvm_stand_in(archive.part, "import time; time.sleep(60)")
    try:
        assert archive.finish(stuck, timeout=2) is False
        assert not archive.path.exists()
    finally:
        stuck.proc.kill()
        stuck.proc.wait()


def test_no_gateway_process_no_archive(tmp_path: Path, jars: list[str]) -> None:
    archive = ClassArchive.for_app(tmp_path, "icu-vitals", jars)
    assert archive.finish(SimpleNamespace()) is False
    assert archive.finish(None) is False
