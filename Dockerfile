# One image for every flk service and the `flk` command (services differ by command).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 flk
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flk ./flk
COPY tools ./tools
COPY services ./services
COPY schemas ./schemas
# (the image has no C compiler: the continuity worker runs its pure hot path, not the compiled twin
# `./run setup` builds — the same results, about 9 % fewer events/s; docs/adr/0010)
RUN pip install --no-cache-dir .
# the continuity workers' RocksDB tables (a named volume mounted here takes this owner)
RUN mkdir -p /var/lib/flk/continuity && chown -R flk:flk /var/lib/flk
USER flk
ENTRYPOINT ["flk"]
CMD ["--help"]
