# Multi-stage build: a static binary on a small runtime image, as a non-root user.
# The bases are build arguments: by default the official Go image and distroless; CI (no registry)
# builds with a local Go toolchain image and a Debian base (deploy/containers/build.sh).
ARG BUILDER_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags "-s -w -X github.com/usersvc/usersvc/internal/app.Version=${VERSION} -X github.com/usersvc/usersvc/internal/app.Revision=${REVISION}" \
    -o /out/usersvc ./cmd/usersvc

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/usersvc /usersvc
# 65532 is distroless's "nonroot"; numeric, so that any runtime base works.
USER 65532:65532
EXPOSE 8000
# The binary checks itself (distroless has no shell or curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usersvc", "healthcheck"]
ENTRYPOINT ["/usersvc"]
CMD ["serve"]
