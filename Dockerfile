# One image for every role (api, workers, watcher, beat); the command picks the role.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg libimage-exiftool-perl \
    libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY pipeline ./pipeline
COPY workers ./workers
RUN pip install --no-cache-dir -e . \
 && useradd --system --uid 1000 --home-dir /data evidence \
 && mkdir -p /data && chown evidence /data
USER evidence
ENV EVIDENCE_HOME=/data EVIDENCE_ENVIRONMENT=production
ENTRYPOINT ["evidence"]
