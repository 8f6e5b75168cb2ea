# The Gatekeeper image: the `gatekeeper` command (worker, setup, codec-server and console in
# compose; the console's templates and stylesheet ship inside the package).
#   docker build -t gatekeeper:0.1.0 .
#   docker run --rm -e TEMPORAL_ADDRESS=host:7233 gatekeeper:0.1.0 worker

FROM python:3.11.13-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gatekeeper ./gatekeeper
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
# Wheels for Gatekeeper and every dependency, so the final stage needs no build tools. The
# `postgres` extra is the PostgreSQL driver (psycopg 3, libpq inside its wheel): workers on
# several hosts share one PostgreSQL database (GATEKEEPER_REGISTRY_URL=postgresql+psycopg://...).
RUN python -m pip wheel --wheel-dir /wheels ".[postgres]"

FROM python:3.11.13-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    GATEKEEPER_DATA_DIR=/data \
    GATEKEEPER_LOG_FORMAT=json
RUN useradd --system --uid 10001 --create-home gatekeeper \
    && mkdir /data && chown gatekeeper:gatekeeper /data
COPY --from=build /wheels /wheels
RUN python -m pip install --no-index --find-links=/wheels "gatekeeper[postgres]" && rm -rf /wheels
USER gatekeeper
WORKDIR /home/gatekeeper
VOLUME ["/data"]
# SIGTERM starts the worker's graceful shutdown (in-flight activities get 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatekeeper"]
CMD ["worker"]
