# syntax=docker/dockerfile:1
# One image for every role (worker, beat, flower, metrics, api, migrate): the compose command picks the role.
#   docker build -t mediarunner .                     # default target `runtime`: extras s3, sftp, transcribe
#   docker build --target gpu -t mediarunner-gpu .    # + the whisperx stack (torch/CUDA, ~7.6 GB) for GPU workers
# Dependencies come from the committed locks (requirements/*.lock, pinned with hashes) and are installed
# before the code is copied: a code change rebuilds only the small wheel layer.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- base: Python, ffmpeg and the unprivileged user every runtime stage shares
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 mediarunner \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin mediarunner

# ---- deps: the runtime lock into /opt/venv (no project code yet: this layer survives code edits)
FROM base AS deps
COPY requirements/runtime.lock /tmp/runtime.lock
RUN python -m venv /opt/venv \
    && pip install --no-deps --require-hashes -r /tmp/runtime.lock

# ---- gpu-deps: the GPU lock (a superset of the runtime lock) on top
FROM deps AS gpu-deps
COPY requirements/gpu.lock /tmp/gpu.lock
RUN pip install --no-deps --require-hashes -r /tmp/gpu.lock

# ---- wheel: the project itself, built with the locked setuptools
FROM base AS wheel
WORKDIR /src
COPY requirements/build.lock /tmp/build.lock
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-deps --require-hashes -r /tmp/build.lock
COPY pyproject.toml README.md LICENSE ./
COPY mediarunner ./mediarunner
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# ---- gpu: GPU workers (MEDIARUNNER_WHISPER_ENGINE=whisperx, WHISPER_DEVICE=cuda)
FROM base AS gpu
COPY --from=gpu-deps /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/*.whl \
    && rm -rf /wheels \
    && mkdir -p /data/inputs /data/outputs /data/scratch /app/var \
    && chown -R 10001:10001 /data /app
WORKDIR /app
ENV MEDIARUNNER_SCRATCH_DIR=/data/scratch MEDIARUNNER_INPUT_ROOTS='["/data/inputs", "/data/outputs"]' \
    MEDIARUNNER_OUTPUT_ROOTS='["/data/outputs"]'
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 CMD ["mediarunner", "check"]
CMD ["mediarunner", "--help"]

# ---- runtime (the default target, last): every role and CPU workers
FROM base AS runtime
COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /wheels /wheels
RUN pip install --no-deps /wheels/*.whl \
    && rm -rf /wheels \
    && mkdir -p /data/inputs /data/outputs /data/scratch /app/var \
    && chown -R 10001:10001 /data /app
WORKDIR /app
ENV MEDIARUNNER_SCRATCH_DIR=/data/scratch MEDIARUNNER_INPUT_ROOTS='["/data/inputs", "/data/outputs"]' \
    MEDIARUNNER_OUTPUT_ROOTS='["/data/outputs"]'
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 CMD ["mediarunner", "check"]
CMD ["mediarunner", "--help"]
