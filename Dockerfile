# runway serve as an image: the Production version of $RUNWAY_SERVE_MODEL over REST.
#   docker build -t runway-serve .
#   docker run -p 8080:8080 -e MLFLOW_TRACKING_URI=http://mlflow:5000 \
#     -e RUNWAY_SERVE_MODEL=churn-classifier runway-serve
# Configuration is the environment (README "Settings"); probes: /ready and /health.

# Stage 1: the wheel, built from the checkout (build tools stay in this stage).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY src ./src
RUN pip install --no-cache-dir "setuptools>=77" \
    && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# Stage 2: the runtime: the wheel and its runtime dependencies at the lock's versions
# (the lock is a constraints file: nothing of the dev tools is installed), a non-root user.
FROM python:3.11-slim-bookworm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin runway
COPY --from=build /wheels /wheels
COPY requirements.lock /tmp/requirements.lock
# psycopg: the prediction log and the Optuna studies on PostgreSQL (the `postgres` extra)
RUN WHEEL="$(ls /wheels/runway_mlops-*.whl)" \
    && pip install --no-cache-dir -c /tmp/requirements.lock "${WHEEL}[postgres]" \
    && rm -rf /wheels /tmp/requirements.lock
USER 10001
WORKDIR /home/runway
ENV PYTHONUNBUFFERED=1 \
    RUNWAY_SERVE_HOST=0.0.0.0 \
    RUNWAY_SERVE_PORT=8080 \
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
EXPOSE 8080
ENTRYPOINT ["runway", "serve"]
