# Watchpost service image: one image, the command picks the role (ingest, api).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY watchpost ./watchpost
COPY ingest ./ingest
COPY detectors ./detectors
COPY api ./api
COPY configs ./configs
RUN pip install --no-cache-dir . && useradd --system --uid 10001 watchpost
USER watchpost
ENV WATCHPOST_CONFIG=/app/configs/demo WATCHPOST_ENV=production
ENTRYPOINT ["watchpost"]
CMD ["api"]
