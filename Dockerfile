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

# The gateway's health check; compose.yaml turns it off for the worker and the one-shot steps.
# A process answers once its PII models and its scan helper's are loaded (5-10 s here, the
# helper waited for at most 30 s): the start period covers the slowest of those.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# One image, every role: the arguments are a `pgw` command. The default serves (after
# `docker run IMAGE migrate` once); `docker run IMAGE worker` runs jobs, and production needs
# at least one worker or data-subject requests are never carried out (see compose.yaml).
ENTRYPOINT ["pgw"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate", "--workers", "2"]
