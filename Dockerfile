# The image the batch engines run: the tools and their three runtime dependencies only.
# Python and dependency versions as the app's backend has them (requirements-app.txt), the
# set `make test-app` runs the suite against.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt requirements-app.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c requirements-app.txt
# The package itself (its console scripts: wardrobe-backfill, wardrobe-validate, ...),
# and the runbook's scripts beside it, as in a checkout.
COPY pyproject.toml README.md ./
COPY normalizer/ normalizer/
COPY backfill/ backfill/
COPY scripts/ scripts/
COPY run_backfill_production.py .
RUN pip install --no-cache-dir --no-deps . && rm -rf build
# Unprivileged; the tools write their stats and log to the working directory (or --output-dir).
RUN useradd --create-home backfill && chown backfill /app
USER backfill
ENTRYPOINT ["wardrobe-backfill"]
