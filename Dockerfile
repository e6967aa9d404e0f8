# Multi-stage build: a static binary on distroless, running as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/rotor ./cmd/server \
 && mkdir -p /out/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rotor /rotor
# /keys belongs to the nonroot user so a named volume mounted there is
# writable by `rotor keygen --out`.
COPY --from=build --chown=65532:65532 /out/keys /keys
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD ["/rotor", "healthcheck"]
ENTRYPOINT ["/rotor"]
