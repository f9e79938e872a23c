# One image for the gateway and the workers; compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# av, pillow and torch ship manylinux wheels: no compiler needed
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY core ./core
COPY fpar_models ./fpar_models
COPY service ./service
COPY worker ./worker
COPY launcher ./launcher

RUN useradd --create-home --uid 1000 fpar && mkdir -p /data /models /weights \
    && chown fpar /data /models
USER fpar
ENV FPAR_DATA_DIR=/data FPAR_MODEL_DIR=/models FPAR_WEIGHTS_DIR=/weights
EXPOSE 8000
CMD ["uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "5"]
