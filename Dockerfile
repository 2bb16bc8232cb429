# patbot container: a static binary on a distroless base, running as a non-root user.
# Build: docker build -t patbot --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) .
# Run:   docker run -p 8080:8080 --env-file patbot.env -v patbot-data:/data \
#          -v $PWD/patbot.yaml:/etc/patbot/patbot.yaml:ro -v $PWD/patbot.pem:/etc/patbot/patbot.pem:ro patbot
# Run one container per database: bbolt admits one writer, and a second patbot exits.
#
# Base images are pinned by digest (the tag says what the image is, the digest which one):
# update them deliberately, with `docker buildx imagetools inspect IMAGE:TAG` for the new digest.

FROM golang:1.26-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/patbot ./cmd/patbot \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
ARG VERSION=devel
ARG REVISION=unknown
LABEL org.opencontainers.image.title="patbot" \
      org.opencontainers.image.description="Approve GitHub fine-grained personal access token requests from Slack" \
      org.opencontainers.image.source="https://github.com/patbot/patbot" \
      org.opencontainers.image.documentation="https://github.com/patbot/patbot#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /out/patbot /usr/local/bin/patbot
# The volume for the bbolt file, owned by the image's non-root user.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PATBOT_DB=/data/patbot.db \
    PATBOT_CONFIG=/etc/patbot/patbot.yaml \
    PATBOT_ADDR=:8080
VOLUME ["/data"]
EXPOSE 8080
# distroless has no shell or curl: patbot probes itself.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 CMD ["/usr/local/bin/patbot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/patbot"]
CMD ["serve"]
