# A model as an OCI image, for the chart's `model.source: oci` ("Your model" in charts/ping/README.md).
#
#   make model-image MODEL_DIR=models/iris MODEL_IMAGE=ping-model MODEL_TAG=v1
#   (= docker build -f model.Dockerfile -t ping-model:v1 models/iris)
#
# The build context is the artifact directory itself (metadata.json and the model file), copied
# to /model, where the chart looks by default (model.oci.path).
#
# Why not FROM scratch: with `model.oci.mount: copy` (any cluster) the chart runs this image as an
# init container whose command is `cp -R /model/. /ping-model`, and scratch has no cp. The base
# is the one Ping's own image is built on, so on a node that runs Ping its layers are already
# there: pulling a model image costs its artifact layer and nothing more. With
# `model.oci.mount: volume` (an image volume, Kubernetes 1.33+) nothing in the image runs, and
# any base works; BASE_IMAGE=busybox:1.37.0-musl, say, gives a standalone image of ~2 MB.
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}
COPY . /model/
# Numeric, as Ping's: the copy runs as uid 10001 under the restricted Pod Security Standard.
USER 10001:10001
ARG MODEL_NAME=unknown
ARG MODEL_VERSION=unknown
LABEL org.opencontainers.image.title="ping model ${MODEL_NAME}" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      org.opencontainers.image.description="A Ping model artifact under /model, for model.source oci." \
      io.ping.model.path="/model"
# Nothing to serve: the chart copies or mounts /model. `true` keeps a bare `docker run` harmless.
CMD ["true"]
