FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PGW_DATA_DIR=/var/lib/pgw \
    PGW_POLICY_DIR=/srv/pgw/policies

RUN useradd --system --uid 10001 --home-dir /srv/pgw --shell /usr/sbin/nologin pgw

WORKDIR /srv/pgw
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY policies ./policies
RUN pip install . \
    && install -d -m 0700 -o pgw -g pgw /var/lib/pgw

USER pgw
VOLUME ["/var/lib/pgw"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# Migrate once, then serve; workers do not run migrations themselves.
CMD ["sh", "-c", "pgw migrate && exec pgw serve --host 0.0.0.0 --port 8000 --no-migrate --workers ${PGW_WORKERS:-2}"]
