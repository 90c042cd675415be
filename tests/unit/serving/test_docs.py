"""/docs and /redoc load everything from eventrec itself, nothing from a CDN."""

from __future__ import annotations

import asyncio
import re

import httpx

from eventrec.config import Settings
from eventrec.serving.app import create_app

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


def fetch(paths: list[str]) -> list[httpx.Response]:
    # No lifespan: the app's pages and assets need no Redis.
    application = create_app(Settings())

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(go())


def test_docs_pages_reference_only_local_assets_that_exist() -> None:
    docs, redoc = fetch(["/docs", "/redoc"])
    for page in (docs, redoc):
        assert page.status_code == 200
        assert "cdn." not in page.text
        assert "fonts.googleapis" not in page.text
    references = {
        next(group for group in match if group)
        for page in (docs, redoc)
        for match in REFERENCE.findall(page.text)
    }
    assets = [ref for ref in references if ref.startswith("/docs-assets/")]
    assert len(assets) >= 4  # Swagger UI's script, style and icon; ReDoc's script
    assert all(ref.startswith("/") for ref in references), references
    for response in fetch(assets):
        assert response.status_code == 200, response.url
        assert len(response.content) > 1000, response.url
    # Swagger UI would fetch a validator badge from a public server by default.
    assert '"validatorUrl": null' in docs.text
