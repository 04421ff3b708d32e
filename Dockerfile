# Multi-stage build: a static binary on distroless, as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/usersvc/usersvc/internal/app.Version=${VERSION} -X github.com/usersvc/usersvc/internal/app.Revision=${REVISION}" \
    -o /out/usersvc ./cmd/usersvc

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/usersvc /usersvc
USER nonroot:nonroot
EXPOSE 8000
# The image has no shell or curl: the binary checks itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/usersvc", "healthcheck"]
ENTRYPOINT ["/usersvc"]
CMD ["serve"]
