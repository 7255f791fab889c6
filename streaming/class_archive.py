"""The driver JVM's class-data archive (JDK application class-data sharing, AppCDS).

A cold start of the stream job spends seconds loading, parsing and verifying the same
thousands of Spark, Scala and connector classes every time. The JDK can map them from an
archive instead: the JVM of a job that ends normally writes one at exit
(``-XX:ArchiveClassesAtExit``, JDK 13+), and the next start maps it
(``-XX:SharedArchiveFile``). Measured: cold start to the first published reading
13.0 s against 15.9 s on average (docs/benchmarks.md, "The driver JVM's class archive").

The archive is only valid for the Java binary and class path it was written with, so its
name carries a fingerprint of both (and of the application, whose classes differ). A JVM
that finds it stale anyway ignores it and starts as without it. It is written only by the
long-running job commands, which stop their JVM themselves (``finish``): a JVM killed
mid-write leaves a ``.part`` file that is never used and is removed at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyspark

UNUSED_DAYS = 7

# Writing an archive warns once for each class it cannot hold (signed jars, classes
# generated at run time): thousands of lines of no use in the job's log. Errors stay.
_QUIET = "-Xlog:cds=error,cds+dynamic=error"


def _spark_home() -> Path:
    return Path(os.environ.get("SPARK_HOME") or Path(pyspark.__file__).parent)


def _java() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else shutil.which("java")
    return Path(found).resolve() if found else None


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def fingerprint(app_name: str, jars: Iterable[str]) -> str:
    """What the archive depends on: the Java binary, Spark's class path and the
    application's jars (name, size and modification time of each), and the application."""
    java = _java()
    parts = [app_name, _stamp(java) if java else "java?"]
    parts += sorted(_stamp(p) for p in (_spark_home() / "jars").glob("*.jar"))
    parts += [_stamp(Path(j)) for j in jars]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ClassArchive:
    """The archive of one application's driver JVM under ``directory``."""

    directory: Path
    app_name: str
    key: str

    @classmethod
    def for_app(cls, cache_dir: Path, app_name: str, jars: Iterable[str]) -> ClassArchive:
        return cls(cache_dir / "class-archives", app_name, fingerprint(app_name, jars))

    @property
    def path(self) -> Path:
        return self.directory / f"{self.app_name}-{self.key}.jsa"

    @property
    def part(self) -> Path:
        """Where this process's JVM writes a new archive at exit."""
        return self.path.with_name(f"{self.path.name}.{os.getpid()}.part")

    def java_options(self) -> str:
        """The JVM options: map the archive if there is one, otherwise write one at
        exit."""
        if self.path.exists():
            # its modification time tells when it was last used (_remove_abandoned)
            with contextlib.suppress(OSError):
                os.utime(self.path)
            return f"-XX:SharedArchiveFile={self.path} {_QUIET}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned()
        return f"-XX:ArchiveClassesAtExit={self.part} {_QUIET}"

    def _remove_abandoned(self) -> None:
        """``.part`` files of processes that are gone (their JVM was killed, or never
        stopped by ``finish``), and this application's archives of other fingerprints
        unused for ``UNUSED_DAYS`` (an upgrade's old class path; two installations on one
        machine each keep theirs)."""
        unused_since = time.time() - UNUSED_DAYS * 86_400
        for old in self.directory.glob("*.jsa*"):
            if old.name.endswith(".part"):
                pid = old.name.rsplit(".", 2)[-2]
                if pid.isdigit() and not _alive(int(pid)):
                    old.unlink(missing_ok=True)
            elif (old.name.startswith(f"{self.app_name}-") and old != self.path
                  and old.stat().st_mtime < unused_since):
                old.unlink(missing_ok=True)

    def finish(self, jvm: object, timeout: float = 120) -> bool:
        """After ``spark.stop()``: end the driver JVM (it exits when its stdin closes) and
        wait for it, so that an archive it writes at exit is complete before it is put in
        place. True if a new archive was put in place."""
        proc = getattr(jvm, "proc", None)
        if proc is None:
            return False
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False  # left running: its archive, if any, is not known to be whole
        part = self.part
        # A JVM that exits by itself (0, or 143 when it was sent SIGTERM too) has written
        # its archive; one killed by a signal (negative) may have been cut off mid-write.
        if code >= 0 and part.exists() and part.stat().st_size > 0:
            os.replace(part, self.path)
            return True
        part.unlink(missing_ok=True)
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
