# Touchpoint for production: long polling, SQLite on the /app/data volume by default
# (set DATABASE_URL to PostgreSQL for several replicas).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY crm ./crm
COPY storage ./storage
COPY sandbox ./sandbox
COPY locales ./locales
COPY config ./config
RUN pip install . \
 && python -c "from bot.i18n import compile_catalogs; compile_catalogs()" \
 && useradd --create-home --uid 10001 touchpoint \
 && mkdir -p /app/data \
 && chown -R touchpoint:touchpoint /app/data /app/locales

USER touchpoint
VOLUME ["/app/data"]
ENV DATABASE_URL=sqlite+aiosqlite:////app/data/touchpoint.db

# Healthy when settings load and the database answers.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-m", "bot", "check"]

CMD ["python", "-m", "bot", "run"]
