# Touchpoint for production: long polling with SQLite on the /app/data volume by default; Telegram's
# webhook with WEBHOOK_URL, and several replicas with DATABASE_URL on PostgreSQL and REDIS_URL
# (compose.yaml shows that set-up).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY crm ./crm
COPY channels ./channels
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
# Inside a container the HTTP side (webhook, events API, /healthz, /readyz, /metrics) must listen on
# all interfaces for the proxy and Prometheus to reach it; publish only what should be public.
ENV DATABASE_URL=sqlite+aiosqlite:////app/data/touchpoint.db \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
EXPOSE 8080

# Healthy when settings load and the database answers (works in polling mode too, where the HTTP
# side runs only with EVENTS_SECRET; in webhook mode the proxy also reads /readyz).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["python", "-m", "bot", "check"]

# SIGTERM (docker stop) lets updates and sends under way finish: give it SHUTDOWN_TIMEOUT_SECONDS.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
