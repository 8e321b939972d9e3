# memos-mcp as a container: `memos-mcp serve --host 0.0.0.0` on port 8000, data in the /data volume.
#   docker build -t memos-mcp .
#   docker run -p 8000:8000 -v memos-data:/data -e MEMOS_ADMIN_KEY=... memos-mcp
# On a public address the server refuses to start without an API key (MEMOS_ADMIN_KEY, or keys made
# with `memos-mcp keys create`); MEMOS_SERVER__ALLOW_UNAUTHENTICATED=true says a proxy in front
# authenticates. BASE_IMAGE may be any Debian-like image with python3 (3.11+) and its venv module.
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY memos_mcp ./memos_mcp
# A build behind a TLS-intercepting proxy passes its CA bundle as a secret:
#   docker build --secret id=pip-cert,src=/etc/ssl/certs/ca-certificates.crt ...
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && python3 -m venv /opt/memos-mcp \
    && /opt/memos-mcp/bin/pip install /src \
    && /opt/memos-mcp/bin/pip uninstall --yes pip
# The int8 query model is derived from the packaged one once, here, not at each container's first search.
ENV MEMOS_EMBEDDER__CACHE_DIR=/opt/memos-mcp/cache
RUN /opt/memos-mcp/bin/python -c "from memos_mcp.config import Settings; \
from memos_mcp.core.factory import build_embedder; build_embedder(Settings()).load()"

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 memos \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home memos \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/memos-mcp /opt/memos-mcp
ENV PATH=/opt/memos-mcp/bin:$PATH \
    MEMOS_EMBEDDER__CACHE_DIR=/opt/memos-mcp/cache \
    PYTHONUNBUFFERED=1 \
    MEMOS_DATA_DIR=/data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MEMOS_SERVER__PORT', '8000'), timeout=4)"]
ENTRYPOINT ["memos-mcp"]
CMD ["serve", "--host", "0.0.0.0"]
