# Ping's image: builder (venv from the lockfile), trainer (bakes the model), runtime (slim).
#
#   docker build -t ping:v001 .
#   docker build --build-arg MODEL_DIR=models/churn -t churn:v1 .   # your packaged model
#
# Air-gapped builds point pip at a mirror or a wheelhouse with build args, e.g.
#   --build-arg PIP_INDEX_URL=https://mirror.example/simple
#   --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=http://127.0.0.1:8765/

# One base for all three stages: the venv's interpreter symlink and its compiled
# wheels must match the runtime's Python exactly. A tag, not a digest, so that an
# offline build can use a locally made image of the same name (scripts/docker-standin.sh).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# Unset unless given: pip then reads them from the environment of the RUN below.
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# Wheels only and every hash checked: the same pins development, training and serving use.
# Then drop what only installing needs (pip, setuptools), the packages' own test suites,
# the type stubs and C/Cython sources that only compilers and type checkers read, and
# Swagger UI's source maps and the builds /docs does not serve (ping.docs serves
# swagger-ui-bundle.js and swagger-ui.css), and pydantic.v1, a copy of pydantic 1 that
# FastAPI asks for only to refuse v1 models (ping.startup blocks it): nothing the service
# reads at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes \
        -r /tmp/requirements.lock \
 && /opt/venv/bin/pip uninstall --no-cache-dir --yes pip setuptools \
 && find /opt/venv/lib/python3.11/site-packages -depth -type d -name tests \
        -path '*/site-packages/*/tests' -exec rm -rf {} + \
 && find /opt/venv/lib/python3.11/site-packages -type f \( -name '*.pyi' -o -name '*.pxd' \
        -o -name '*.pyx' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' \
        -o -name '*.cpp' \) -delete \
 && find /opt/venv/lib/python3.11/site-packages/swagger_ui_bundle -type f \( -name '*.map' \
        -o -name 'swagger-ui-es-bundle*.js' -o -name 'swagger-ui.js' \) -delete \
 && rm -rf /opt/venv/lib/python3.11/site-packages/pydantic/v1

FROM builder AS trainer
# Deterministic: seeded training, and created_at pinned by SOURCE_DATE_EPOCH
# (`make image` passes the commit time).
ARG SOURCE_DATE_EPOCH=1767225600
# An artifact directory under models/ in the build context (made by `pingctl package`)
# to bake instead of training the bundled iris model: --build-arg MODEL_DIR=models/NAME.
ARG MODEL_DIR=""
WORKDIR /build
# Training writes its artifact through ping.package, the packager's own code.
COPY src/ping/ /opt/venv/lib/python3.11/site-packages/ping/
COPY training/ training/
COPY models/ context-models/
# Without MODEL_DIR: the iris model, and a second one, so that the gateway's kind example
# serves two different models (charts/ping/README.md, "Gateway"): a release selects it
# with config.modelDir=/app/models/forest.
RUN set -eu; \
    if [ -n "$MODEL_DIR" ]; then \
      name="${MODEL_DIR#models/}"; name="${name%/}"; \
      if [ ! -f "context-models/$name/metadata.json" ]; then \
        echo "MODEL_DIR=$MODEL_DIR: no metadata.json there in the build context;" \
             "package a model into models/NAME with pingctl package" >&2; \
        exit 1; \
      fi; \
      mkdir -p models && cp -R "context-models/$name" "models/$name"; \
    else \
      /opt/venv/bin/python -m training.train --output-dir /build/models/iris; \
      /opt/venv/bin/python -m training.train --output-dir /build/models/forest \
        --name forest --estimator forest; \
    fi; \
    rm -rf context-models

FROM ${PYTHON_IMAGE} AS runtime
ARG MODEL_DIR=""
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PING_HOST=0.0.0.0 \
    PING_PORT=9696 \
    PING_MODEL_DIR=/app/${MODEL_DIR:-models/iris}
WORKDIR /app
# Ordered by how often they change: dependencies, then the model, then our code.
COPY --from=builder /opt/venv /opt/venv
COPY --from=trainer /build/models/ /app/models/
# The package goes straight into site-packages instead of being built: it is pure
# Python and the CMD runs it with `-m`, so a wheel build would only add setuptools>=77
# (a build dependency outside the runtime lock) and tie this small, most often
# changed layer to the large venv layer above.
COPY src/ping/ /opt/venv/lib/python3.11/site-packages/ping/
# Compiled here, as pip compiles an installed package: the root filesystem is read-only and
# PYTHONDONTWRITEBYTECODE is set, so otherwise every start compiles these modules again
# (~250 million instructions, 7 % of a start). By content hash, unchecked: the layer does
# not depend on the checkout's timestamps, and nothing here changes the sources.
RUN python -m compileall -q --invalidation-mode unchecked-hash \
        /opt/venv/lib/python3.11/site-packages/ping/
# Numeric, so that Kubernetes can verify runAsNonRoot; the chart's runAsUser matches.
USER 10001:10001
EXPOSE 9696
# Last, so that a new revision does not invalidate any layer above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="ping" \
      org.opencontainers.image.description="A fast, safe scikit-learn inference service." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
# One uvicorn process per container; scale with replicas. The chart's contract
# test parses this line, so keep it the last CMD.
CMD ["python", "-m", "ping"]
