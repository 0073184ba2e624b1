# The light image: the API (with its sweeper), the webhook delivery worker and Flower. No torch, no
# diffusers: it starts in well under a second. Build from the repository root:
#   docker build -f docker/api.Dockerfile -t reelforge-api .
# One image runs all three roles; compose and k8s/ pick the role with the command.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The versions CI tested (`make docker-pins`), in their own layer: they change less than the code.
COPY docker/api-requirements.txt ./
RUN pip install --no-cache-dir -r api-requirements.txt
COPY pyproject.toml README.md ./
# The worker package stays out: the scheduler never imports it.
COPY shared shared
COPY scheduler scheduler
RUN pip install --no-cache-dir --no-deps . \
 && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="reelforge-api" \
      org.opencontainers.image.description="ReelForge API, webhook delivery worker and Flower (no torch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/reelforge/reelforge"
RUN groupadd --system --gid 10001 reelforge \
 && useradd --system --uid 10001 --gid reelforge --home-dir /app --no-create-home reelforge
COPY --from=build /opt/venv /opt/venv
# Bytecode was compiled at build time, so a read-only root filesystem costs nothing at start.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REELFORGE_API_HOST=0.0.0.0 \
    REELFORGE_API_PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000 5555
# For the API role; compose and Kubernetes set their own probe per role.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-m", "shared.probes", "api"]
CMD ["python", "-m", "scheduler"]
