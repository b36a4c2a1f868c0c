# One image for every role (worker-cpu, worker-gpu, beat, flower, migrate); the command picks the role.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mediarunner ./mediarunner
ARG EXTRAS=transcribe
RUN pip install --no-cache-dir ".[${EXTRAS}]"
RUN useradd --create-home --uid 1000 mediarunner && mkdir -p /data && chown mediarunner /data
USER mediarunner
ENV MEDIARUNNER_SCRATCH_DIR=/data/scratch MEDIARUNNER_OUTPUT_ROOTS='["/data/outputs"]'
CMD ["mediarunner", "--help"]
