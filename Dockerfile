# respy's image:   docker build -t respy .
# Stage 1 builds respy's wheel and its dependencies' wheels and installs them into /opt/respy;
# stage 2 is the same pinned slim Python with only that environment and the ./respy shim.
# docker/install.sh holds the commands (tests/test_deploy_image.py runs the same script).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN sh docker/install.sh wheels /src /wheels \
 && sh docker/install.sh venv /wheels /opt/respy \
 && install -D -m 0555 docker/respy /app/respy

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="respy" \
      org.opencontainers.image.description="Measure how traffic to a service is split between its versions"
# Read-only root filesystem: nothing is written at run time (bytecode was compiled in stage 1).
ENV PATH=/opt/respy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/respy /opt/respy
COPY --from=build /app /app
WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it; not 1337 (Istio's proxy UID, whose traffic
# bypasses the sidecar).
USER 10001:10001
# Stay alive for `kubectl exec ... -- ./respy ...`; exit at once on SIGTERM (PID 1 ignores signals it
# does not handle, so a plain `sleep` would hold the pod for the whole grace period).
CMD ["python", "-c", "import signal, sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); signal.pause()"]
