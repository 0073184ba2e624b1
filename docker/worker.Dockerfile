# The GPU worker: CUDA-enabled PyTorch, diffusers, PyAV (its wheels carry FFmpeg with libx264).
# Model weights are not baked in: they come from a Hugging Face cache mounted at /models/hf
# (downloaded ahead of time, or by the optional download step, off by default), and the worker runs
# with HF_HUB_OFFLINE=1. Build from the repository root:
#   docker build -f docker/worker.Dockerfile -t reelforge-worker .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The versions CI tested (`make docker-pins`), in their own layer: torch is most of the image and
# changes least. PyPI's Linux x86_64 torch wheel is the CUDA build (CUDA 12.8 or later, so Blackwell
# B200/B300 too); the CUDA libraries come with it as nvidia-* wheels, the driver from the host.
COPY docker/worker-requirements.txt ./
RUN pip install --no-cache-dir -r worker-requirements.txt
COPY pyproject.toml README.md ./
COPY shared shared
COPY scheduler scheduler
COPY workers workers
RUN pip install --no-cache-dir --no-deps . \
 && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="reelforge-worker" \
      org.opencontainers.image.description="ReelForge GPU worker: SkyReels-V2 DF on CUDA PyTorch; weights from a mounted Hugging Face cache" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/reelforge/reelforge"
RUN groupadd --system --gid 10001 reelforge \
 && useradd --system --uid 10001 --gid reelforge --home-dir /app --no-create-home reelforge \
 && mkdir -p /models/hf \
 && chown reelforge:reelforge /models/hf
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/models/hf \
    HF_HUB_OFFLINE=1 \
    REELFORGE_HF_HOME=/models/hf
WORKDIR /app
VOLUME ["/models/hf"]
USER 10001:10001
# Healthy once its Celery consumer runs (a heartbeat in Redis), model loading included.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-m", "shared.probes", "worker"]
# SIGTERM is Celery's warm shutdown: the running job finishes, or goes back on the queue.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "workers"]
