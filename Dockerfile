# One image for every eventrec process: `eventrec consumer`, `eventrec trainer`, `eventrec serve`.
FROM python:3.11-slim

# numba keeps the compiled top-k where the unprivileged user can write (not site-packages).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 NUMBA_CACHE_DIR=/tmp/numba-cache
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# The hybrid's compiled loops, compiled once into the image (readable by the user below).
RUN pip install . \
    && python -c 'from eventrec.serving.state import warm_compiled; warm_compiled()' \
    && chmod -R a+rwX /tmp/numba-cache \
    && useradd --system --uid 10001 eventrec
USER eventrec
ENTRYPOINT ["eventrec"]
CMD ["--help"]
