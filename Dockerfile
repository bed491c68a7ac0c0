# One image for the Ray head (API) and the farm nodes.
FROM python:3.11-slim
# The X and GL libraries are what the bpy wheel (the `render` extra) links against.
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg make \
    libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libxext6 libgl1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY config config
COPY serve serve
COPY actors actors
COPY pipelines pipelines
RUN pip install --no-cache-dir uv==0.13.9 \
    && UV_PROJECT_ENVIRONMENT=/opt/venv uv sync --frozen --no-dev --extra render
ENV PATH=/opt/venv/bin:$PATH
