# syntax=docker/dockerfile:1
# MedView Companion: the `medview serve` image for ECS Fargate (deploy/aws/medview-ecs.yaml).
#
#   docker build -t medview .                                   # production image, no model file
#   docker build --build-arg INCLUDE_LOCAL_MODEL=1 -t medview:demo .   # with the 93 MB demo model
#
# These machines have no container engine: scripts/build-image-rootfs.sh runs the same steps
# (deploy/image/build.sh and deploy/image/stage.sh, shared with this file) and assembles the
# image's filesystem in a directory, then runs it as the non-root user. A test
# (Tests/python/test_image_build.py) keeps the two in step. docs/DEPLOY.md has the details.

ARG SWIFT_VERSION=6.3.1
ARG RDS_CA_BUNDLE_URL=https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem

# ---- build: release, portable CPU target, static Swift runtime ---------------------------------
FROM swift:${SWIFT_VERSION}-bookworm AS build
ARG INCLUDE_LOCAL_MODEL=0
WORKDIR /src
COPY deploy/image/build-packages.txt /tmp/build-packages.txt
RUN apt-get update -qq \
 && grep -v '^#' /tmp/build-packages.txt | xargs apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
COPY Package.swift Package.resolved* ./
COPY Sources ./Sources
# SwiftPM checks every declared target's folder, test targets included (nothing in them is built).
COPY Tests ./Tests
COPY deploy/image ./deploy/image
RUN --mount=type=cache,target=/src/.build \
    bin="$(deploy/image/build.sh release .build)" \
 && if [ "$INCLUDE_LOCAL_MODEL" = 1 ]; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null; \
    fi \
 && INCLUDE_LOCAL_MODEL="$INCLUDE_LOCAL_MODEL" deploy/image/stage.sh "$bin" /staging

# ---- the RDS/Aurora certificate bundle for sslmode=verify-full ----------------------------------
FROM scratch AS rds-ca
ARG RDS_CA_BUNDLE_URL
ADD ${RDS_CA_BUNDLE_URL} /rds-global-bundle.pem

# ---- runtime: Debian 12 slim, non-root --------------------------------------------------------
FROM debian:bookworm-slim AS runtime
COPY deploy/image/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
 && grep -v '^#' /tmp/runtime-packages.txt | xargs apt-get install -y -qq --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 medview \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/medview --no-create-home --shell /usr/sbin/nologin medview
COPY --from=build /staging/ /
COPY --from=rds-ca /rds-global-bundle.pem /opt/medview/etc/rds-global-bundle.pem
RUN chown 10001:10001 /var/lib/medview && chmod 0700 /var/lib/medview
# Declared so that Fargate's task volumes mounted here start as the image has them (owner 10001,
# mode 0700; /tmp 1777) under a read-only root filesystem (deploy/aws/medview-ecs.yaml).
VOLUME ["/var/lib/medview", "/tmp"]
ENV MEDVIEW_DATA_DIR=/var/lib/medview \
    MEDVIEW_PORT=8080
USER 10001:10001
WORKDIR /var/lib/medview
EXPOSE 8080
# Development mode (the default) listens on loopback only; the task definition sets
# MEDVIEW_ENV=production, MEDVIEW_HOST=0.0.0.0 and the Cognito, database and KMS settings.
ENTRYPOINT ["/opt/medview/bin/medview"]
CMD ["serve"]
