# syntax=docker/dockerfile:1
# The speech-recognition service: `docker build -t openasr .` then `docker run --gpus all -p 8000:8000 openasr`.
# Without a GPU the same image serves on CPU (ASR_DEVICE=auto picks whatever torch finds).

# Stage 1: build the project wheel; the bundled checkpoint, configs and samples ride along as package data
# (pyproject.toml). The wheel holds one compiled module, the first-pass search (setup.py), so this stage's Python
# (3.12) must be the runtime's (Ubuntu 24.04's python3, 3.12), and it needs a C++ compiler. Without one the wheel
# would still build, and serve the slower Python search.
FROM python:3.12-slim-bookworm AS wheel
# As in the runtime stage below: Debian's archive drops superseded versions, so a pin breaks the build within weeks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# README.m[d]: the glob copies the README when there is one without failing the build when there is not.
COPY pyproject.toml setup.py README.m[d] ./
COPY model/ model/
COPY service/ service/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Stage 2: runtime. torch 2.14.1's Linux wheel is the CUDA 13.0 build and brings its own CUDA runtime, cuBLAS
# and cuDNN as nvidia-* wheels, which it loads in preference to system copies. So the image needs no CUDA
# libraries of its own: the `base` flavour is enough, and `cudnn-runtime` would add about a gigabyte that torch
# never loads. What the CUDA base image does contribute is the NVIDIA_* variables the container toolkit reads to
# inject the host driver, including NVIDIA_REQUIRE_CUDA, which rejects a host driver too old for CUDA 13.0 at
# container start rather than at the first kernel launch. Any 13.0.x tag would do; one is pinned so that builds
# repeat, and tests/deploy/test_deploy.py checks that its 13.0 is torch.version.cuda.
FROM nvidia/cuda:13.0.2-base-ubuntu24.04

# The PyTorch index makes the CUDA 13.0 build an explicit choice rather than whatever PyPI serves by default;
# --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu builds a much smaller CPU-only image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130

# Distro versions are not pinned: Ubuntu's archive drops superseded versions, so a pin breaks the build within
# weeks, and the base image tag already fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv libsndfile1 \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# Bytecode is compiled at install time; at run time the root filesystem may be read-only (deploy/k8s).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The wheel pins torch and torchaudio exactly (pyproject.toml), so installing it fixes both. The bind mount keeps
# the wheel itself out of the image's layers.
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" /wheels/openasr-*.whl

# A fixed numeric uid lets Kubernetes verify runAsNonRoot without resolving names in the image.
RUN useradd --system --uid 10001 --user-group --home-dir /tmp --shell /usr/sbin/nologin asr
USER 10001:10001
# Settings are read from ASR_* variables, or from a .env file mounted here.
WORKDIR /app

# Listen on every interface inside the container; the settings default (127.0.0.1) suits a laptop, not a pod.
ENV ASR_HOST=0.0.0.0 \
    ASR_PORT=8000
EXPOSE 8000

# Liveness only: /readyz turns 503 while draining, and Docker would then mark a draining container unhealthy.
# start-period covers loading and warming up the model (uvicorn listens only once that is done).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ASR_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "service"]
