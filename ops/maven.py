"""Fetching jars from Maven Central with a throw-away pom.

``resolve(...)`` writes a pom that depends on the requested coordinates, runs
``mvn dependency:copy-dependencies`` into a temporary directory and moves the jars of
the resolved runtime closure into the target directory. A marker file, written last,
records what the directory holds; while it matches, later calls return at once without
starting Maven.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

# The plugin is pinned so a machine's default (Debian's Maven 3.8 ships 2.8) does not
# decide what ends up on the class path.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
MARKER = ".complete.json"


class MavenError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    """One Maven coordinate, ``group:artifact:version[:classifier]``."""

    group: str
    artifact: str
    version: str
    classifier: str | None = None

    @classmethod
    def parse(cls, coordinate: str) -> Artifact:
        parts = coordinate.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"not group:artifact:version[:classifier]: {coordinate!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return ":".join(p for p in (self.group, self.artifact, self.version, self.classifier)
                        if p)


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    path: Path


def spec_digest(artifacts: Sequence[Artifact], extra: str = "") -> str:
    text = "\n".join(sorted(map(str, artifacts))) + "\n" + extra + "\n" + DEPENDENCY_PLUGIN
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_complete(target: Path, digest: str) -> bool:
    """True if ``target`` holds a finished fetch of exactly this spec."""
    try:
        data = json.loads((target / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if data.get("digest") != digest:
        return False
    return all((target / name).is_file() for name in data.get("jars", []))


def _pom(artifacts: Sequence[Artifact]) -> str:
    deps = []
    for a in artifacts:
        classifier = f"<classifier>{escape(a.classifier)}</classifier>" if a.classifier else ""
        deps.append(
            f"    <dependency><groupId>{escape(a.group)}</groupId>"
            f"<artifactId>{escape(a.artifact)}</artifactId>"
            f"<version>{escape(a.version)}</version>{classifier}</dependency>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.icu-monitor</groupId><artifactId>fetch</artifactId>"
        "<version>0</version><packaging>pom</packaging>\n"
        "  <dependencies>\n" + "\n".join(deps) + "\n  </dependencies>\n</project>\n"
    )


def _copied_jars(root: Path) -> list[Jar]:
    """Jars under a ``useRepositoryLayout`` tree: group/path/artifact/version/file.jar."""
    jars = []
    for path in sorted(root.rglob("*.jar")):
        rel = path.relative_to(root).parts
        if len(rel) < 4:
            raise MavenError(f"unexpected layout: {path}")
        jars.append(Jar(".".join(rel[:-3]), rel[-3], rel[-2], path))
    return jars


def resolve(
    artifacts: Sequence[Artifact],
    target: Path,
    *,
    exclude: Callable[[Jar], bool] | None = None,
    mvn: str = "mvn",
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Put the runtime closure of ``artifacts`` into ``target`` (a flat directory of jars).

    ``exclude`` drops jars already provided elsewhere (e.g. by pyspark). Idempotent: a
    finished directory is reused, an unfinished one is replaced. Returns the jar paths.
    """
    digest = spec_digest(artifacts)
    if is_complete(target, digest):
        return _listed(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two processes fetching at once: the second waits, then finds the work done.
    with open(target.parent / f".{target.name}.fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if is_complete(target, digest):
                return _listed(target)
            return _resolve(artifacts, target, digest, exclude=exclude, mvn=mvn, log=log)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_CENTRAL_ONLY = """<settings><mirrors><mirror>
  <id>central-only</id><mirrorOf>*</mirrorOf><url>https://repo.maven.apache.org/maven2</url>
</mirror></mirrors></settings>
"""


def _central_only(work: Path) -> list[str]:
    """Send every repository to Maven Central. Some poms (Spark's parent) list extra
    repositories that a hospital or CI network cannot reach; what we fetch is all on
    Central. An operator's own ~/.m2/settings.xml (a proxy, an internal mirror) wins."""
    if (Path.home() / ".m2" / "settings.xml").exists():
        return []
    path = work / "settings.xml"
    path.write_text(_CENTRAL_ONLY)
    return ["-s", str(path)]


def _listed(target: Path) -> list[Path]:
    return [target / n for n in json.loads((target / MARKER).read_text())["jars"]]


def _resolve(
    artifacts: Sequence[Artifact],
    target: Path,
    digest: str,
    *,
    exclude: Callable[[Jar], bool] | None,
    mvn: str,
    log: Callable[[str], None],
) -> list[Path]:
    if shutil.which(mvn) is None:
        raise MavenError(f"`{mvn}` not found; install Maven (apt-get install maven)")

    started = time.monotonic()
    log(f"fetching {', '.join(map(str, artifacts))} -> {target}")
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target.parent) as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(_pom(artifacts))
        out = work / "deps"
        cmd = [
            mvn, "-q", "-B", "-U", "-f", str(work / "pom.xml"), *_central_only(work),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            "-DincludeScope=runtime", "-Dmdep.useRepositoryLayout=true",
            f"-DoutputDirectory={out}",
        ]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                              env={**os.environ, "MAVEN_SKIP_RC": "true"})
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise MavenError(f"mvn failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
        jars = [j for j in _copied_jars(out) if not (exclude and exclude(j))]
        names = [j.path.name for j in jars]
        if len(set(names)) != len(names):
            raise MavenError(f"two resolved jars share a file name: {sorted(names)}")

        # Replace whatever was there (an interrupted fetch, or other versions).
        target.mkdir(parents=True, exist_ok=True)
        (target / MARKER).unlink(missing_ok=True)
        for old in target.glob("*.jar"):
            old.unlink()
        for jar in jars:
            shutil.move(str(jar.path), target / jar.path.name)
        marker = {
            "digest": digest,
            "artifacts": [str(a) for a in artifacts],
            "jars": names,
            "resolved": [f"{j.group}:{j.artifact}:{j.version}" for j in jars],
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        tmp_marker = target / (MARKER + ".tmp")
        tmp_marker.write_text(json.dumps(marker, indent=1))
        tmp_marker.replace(target / MARKER)
    log(f"  {len(jars)} jars in {time.monotonic() - started:.1f}s")
    return [target / n for n in names]


def provided_by(directory: Path, log: Callable[[str], None] = print) -> Callable[[Jar], bool]:
    """An ``exclude`` for ``resolve``: true for a jar whose artifact ``directory`` already
    has as ``<artifact>-<version>.jar`` (any version; a different one is reported)."""
    names = [p.name for p in directory.glob("*.jar")]

    def check(jar: Jar) -> bool:
        prefix = jar.artifact + "-"
        have = [n for n in names if n.startswith(prefix) and n[len(prefix):][:1].isdigit()]
        if have and f"{jar.artifact}-{jar.version}.jar" not in have:
            log(f"  using {have[0]} from {directory} instead of {jar.artifact} {jar.version}")
        return bool(have)

    return check
