"""The Spark Cassandra Connector's connection factory that checks the server's host name
against its certificate (``jvm/HostnameCheckingConnectionFactory.java``; why in
``backend.clients.SPARK_HOSTNAME_CHECKING_FACTORY``), compiled once per source change
into a jar for ``spark.jars``. Needs a JDK's ``javac`` where the stream job starts, like
the secured Cassandra's query handler."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from backend.settings import Settings

SOURCE = Path(__file__).with_name("jvm") / "HostnameCheckingConnectionFactory.java"


class FactoryBuildError(RuntimeError):
    pass


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "javac").exists():
        return str(Path(home) / "bin" / "javac")
    found = shutil.which("javac")
    if found:
        return found
    raise FactoryBuildError("checking Cassandra's host name in the Spark job needs javac (a "
                            "JDK 17: apt-get install openjdk-17-jdk-headless)")


def factory_jar(settings: Settings, connector_jars: list[str]) -> Path:
    """The factory's jar under ``<cache_dir>/jvm``, compiled against ``connector_jars``
    and pyspark's own jars when missing or older than its source."""
    import pyspark

    out = settings.cache_dir / "jvm" / "icu-connection-factory.jar"
    if out.exists() and out.stat().st_mtime >= SOURCE.stat().st_mtime:
        return out
    classpath = os.pathsep.join([*connector_jars,
                                 str(Path(pyspark.__file__).parent / "jars" / "*")])
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        classes = Path(tmp) / "classes"
        proc = subprocess.run([_javac(), "-nowarn", "--release", "17", "-cp", classpath,
                               "-d", str(classes), str(SOURCE)],
                              capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            raise FactoryBuildError(f"compiling {SOURCE.name} failed:\n{proc.stdout}"
                                    f"{proc.stderr}")
        partial = Path(tmp) / out.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(partial, out)  # another job starting at once sees a whole jar
    return out
