# The web gallery (`shoplens serve`) in a container, serving a trained project mounted read-only at /project:
#
#   docker build -t shoplens-gallery .
#   docker run --rm -p 127.0.0.1:5000:5000 -v "$PWD:/project:ro" shoplens-gallery
#
# Build arguments (README, "The gallery in a container"):
#   BASE_IMAGE      a Debian-like image with python3 3.11 and its venv module [python:3.11-slim-bookworm]
#   EXTRA_CA_CERTS  PEM certificates pip must trust besides the base image's, such as a TLS-intercepting proxy's
#   PIP_INDEX_URL   a mirror of PyPI
# Builds with BuildKit and with the legacy builder alike.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG EXTRA_CA_CERTS=""
ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
# Only the gallery's run-time packages, each pinned with its hashes, as wheels: nothing is compiled here.
# The extra certificates join the base image's bundle for pip in this stage only; the image gets none of them.
COPY requirements-serve.txt /tmp/
RUN set -e; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        export PIP_CERT=/tmp/ca-bundle.pem; \
        cat "$(python3 -c 'import ssl; print(ssl.get_default_verify_paths().openssl_cafile)')" > "$PIP_CERT" \
            2>/dev/null || true; \
        printf '%s\n' "$EXTRA_CA_CERTS" >> "$PIP_CERT"; \
    fi; \
    /opt/venv/bin/pip install --quiet --require-hashes --only-binary :all: -r /tmp/requirements-serve.txt
COPY setup.py pyproject.toml README.md /tmp/shoplens/
COPY src /tmp/shoplens/src
# TensorFlow's C++ headers (430 MB) serve only to compile new operations.
RUN /opt/venv/bin/pip install --quiet --no-deps --no-build-isolation /tmp/shoplens && \
    rm -rf /opt/venv/lib/python3*/site-packages/tensorflow/include

FROM ${BASE_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin shoplens
# HOME is /tmp: what a library caches goes there, never to the project (Compose mounts /tmp as tmpfs and the
# rest of the container read-only). SHOPLENS_HOST and SHOPLENS_PORT are where `shoplens serve` listens, and
# what the health check asks: `docker run -e SHOPLENS_PORT=8080` moves both.
ENV PATH=/opt/venv/bin:$PATH HOME=/tmp PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SHOPLENS_PROJECT_DIR=/project SHOPLENS_HOST=0.0.0.0 SHOPLENS_PORT=5000
WORKDIR /project
USER 10001
EXPOSE 5000
# Loading the models takes a while; http.client, unlike urllib, goes to no HTTP proxy a user's environment names.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import http.client as h, os, sys; c = h.HTTPConnection('127.0.0.1', int(os.environ['SHOPLENS_PORT']), timeout=4); c.request('GET', '/api/health'); sys.exit(c.getresponse().status != 200)"
# dumb-init (from requirements-serve.txt) is PID 1: it passes `docker stop`'s SIGTERM on to the server, which
# then ends at once (a PID 1 without a handler would ignore it until docker kills it 10 s later), and reaps
# orphaned processes.
ENTRYPOINT ["dumb-init", "--"]
CMD ["shoplens", "serve"]
