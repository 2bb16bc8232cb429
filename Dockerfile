# patbot container: a static binary on a distroless base, running as a non-root user.
# Build: docker build -t patbot --build-arg VERSION=$(git describe --tags --always) .
# Run:   docker run -p 8080:8080 --env-file patbot.env -v patbot-data:/data \
#          -v $PWD/patbot.yaml:/etc/patbot/patbot.yaml:ro -v $PWD/patbot.pem:/etc/patbot/patbot.pem:ro patbot
# Run one container per database: bbolt admits one writer, and a second patbot exits.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/patbot ./cmd/patbot \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/patbot /usr/local/bin/patbot
# The volume for the bbolt file, owned by the image's non-root user.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV PATBOT_DB=/data/patbot.db \
    PATBOT_CONFIG=/etc/patbot/patbot.yaml \
    PATBOT_ADDR=:8080
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/patbot"]
CMD ["serve"]
