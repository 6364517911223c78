# The one image for local runs, AWS Lightsail and Heroku (docs/container.md explains the choices).
# Plain Dockerfile syntax only: the classic builder (DOCKER_BUILDKIT=0) and buildx both build it.
#
#   docker build -t mlservice:local .   (or: make image)
#
# The model is not trained here: the image carries models/model.skops, its ONNX compile
# models/model.onnx (when training made one) and models/model.json from the build context, which
# is the artifact the test job tested (make image / the pipeline put it there).

# Literal FROM lines, so Dependabot sees and updates them. Both stages use the same image, so the
# venv's python symlink resolves in the runtime. Without Docker Hub, .ci/base-image tags a
# Debian stand-in locally as python:3.13-slim (make image does this).

# ---- build: the locked dependencies and the package, installed into /opt/venv ----------------
FROM python:3.13-slim AS build

# Same uv as the Makefile, so the image installs exactly what uv.lock says, as `make env` does.
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv

RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /build

# Dependencies first, in their own layer: code changes do not reinstall them. Only what serving
# needs (pyproject.toml's dependencies: numpy, onnxruntime, Flask, ...), not the training stack.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project --python python3

# The card decides the rest: a model training could not compile to ONNX is served with skops and
# scikit-learn (the skops group, with SciPy); an ONNX one needs neither.
COPY models/model.json models/
RUN if python3 -c 'import json, sys; card = json.load(open("models/model.json")); sys.exit(card.get("serving", {}).get("runtime") == "onnxruntime")'; then         /opt/uv/bin/uv sync --frozen --no-dev --group skops --no-install-project --inexact --python python3;     fi

# Then the package itself, as a wheel (not editable: /build is not copied to the runtime).
# Removed, as the service never loads them: the test suites shipped inside the libraries, and
# onnxruntime's C-API library (its Python binding links the runtime in) and its Python tools for
# transformers and quantization. Then the image proves it can serve the card's model.
COPY README.md ./
COPY src/ src/
COPY models/ models/
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-editable --inexact --python python3 \
    && find /opt/venv -depth -type d -path '*/site-packages/*' -name tests -exec rm -rf {} + \
    && find /opt/venv -depth -path '*/site-packages/onnxruntime/*' \
        \( -path '*/capi/libonnxruntime.so.*' -o -path '*/onnxruntime/transformers' \
        -o -path '*/onnxruntime/quantization' -o -path '*/onnxruntime/tools' \) -exec rm -rf {} + \
    && /opt/venv/bin/python -c "import mlservice.api, gunicorn; from mlservice import model; print('serves with', model.load('models/model.skops').runtime)"

# ---- runtime: the venv, the gunicorn settings, the model and the example data ----------------
FROM python:3.13-slim

# A fixed, unprivileged UID/GID: volume permissions and Kubernetes' runAsNonRoot can rely on it.
# -l: no lastlog/faillog entries (a large sparse file for a high UID).
RUN groupadd --gid 10001 app \
    && useradd -l --uid 10001 --gid app --no-create-home --home-dir /app \
       --shell /usr/sbin/nologin app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8000

# Root-owned and read-only for the app user: the service never writes to its own files.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY gunicorn.conf.py ./
COPY models/ models/
COPY data/ data/

USER 10001:10001
EXPOSE 8000

# The slim image has no curl; ask /healthz with Python on whatever port $PORT says.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and receives SIGTERM from `docker stop` and the platforms directly.
# mlservice-server is `gunicorn -c gunicorn.conf.py` after a check of the settings (a bad one
# stops it with one line; gunicorn alone fails on a non-numeric WEB_CONCURRENCY with a traceback).
CMD ["mlservice-server"]

# Labels last: CREATED changes on every build and would otherwise invalidate the cached layers.
ARG BASE_IMAGE=python:3.13-slim
ARG SOURCE=""
ARG REVISION=""
ARG VERSION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="mlservice" \
      org.opencontainers.image.description="A Flask + scikit-learn prediction service served by gunicorn" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
