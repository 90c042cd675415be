# One image for every eventrec process: `eventrec consumer`, `eventrec trainer`, `eventrec serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 eventrec
USER eventrec
ENTRYPOINT ["eventrec"]
CMD ["--help"]
