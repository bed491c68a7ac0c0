# One image for the Ray head (API) and the farm nodes.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY config config
COPY serve serve
COPY actors actors
COPY pipelines pipelines
RUN pip install --no-cache-dir uv==0.13.9 \
    && UV_PROJECT_ENVIRONMENT=/opt/venv uv sync --frozen --no-dev
ENV PATH=/opt/venv/bin:$PATH
