# The Python application image: the `icu` CLI with the stream job (Spark, local mode),
# the simulators, the web app and the schema/topic tools. Kafka and Cassandra run from
# their official images (see docker-compose.yml).
#
#   docker build -t icu-monitor .
#
# Stages: `app` (Python 3.11 + Java 17 runtime for Spark + the project), `jars` (adds
# Maven and fetches the Spark Kafka connector jars that pyspark's wheel lacks, with the
# same pinned versions as `icu services fetch`), final = `app` + those jars.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS app
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        openjdk-17-jre-headless procps tini; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /app

# Dependencies first (a layer that survives source edits), read from pyproject.toml.
COPY pyproject.toml README.md ./
RUN set -eux; \
    python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt; \
    pip install -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

# The project itself (editable, so migrations, assets and other data files are used in
# place; no build of a wheel needed).
COPY backend ./backend
COPY devices ./devices
COPY ops ./ops
COPY streaming ./streaming
COPY webapp ./webapp
COPY assets ./assets
RUN pip install --no-deps -e .

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin icu \
    && mkdir -p /var/lib/icu /opt/icu/jars /data \
    && chown -R icu:icu /var/lib/icu /opt/icu
ENV ICU_CACHE_DIR=/var/lib/icu/cache \
    ICU_DATA_DIR=/data \
    ICU_SPARK__JARS_DIR=/opt/icu/jars \
    ICU_SPARK__CHECKPOINT_DIR=/var/lib/icu/checkpoints/vitals


FROM app AS jars
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends maven; \
    rm -rf /var/lib/apt/lists/*
RUN python -c "from backend.settings import Settings; from ops.artefacts import spark_jars; \
print(*spark_jars(Settings()), sep='\n')"


FROM app
COPY --from=jars --chown=icu:icu /opt/icu/jars /opt/icu/jars
USER icu
VOLUME ["/var/lib/icu"]
EXPOSE 8050
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["icu", "--help"]
