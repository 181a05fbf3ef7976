# Watchpost service image: one image, the command picks the role (ingest, api).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# LightGBM (the crowd density trees) links the system's OpenMP runtime, which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY watchpost ./watchpost
COPY ingest ./ingest
COPY detectors ./detectors
COPY dispatch ./dispatch
COPY api ./api
COPY configs ./configs
RUN pip install --no-cache-dir . && useradd --system --uid 10001 watchpost
USER watchpost
ENV WATCHPOST_CONFIG=/app/configs/demo WATCHPOST_ENV=production
ENTRYPOINT ["watchpost"]
CMD ["api"]
