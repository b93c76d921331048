"""The dashboard: a studio page at `/`, plain HTML/CSS/JS modules served by the service itself.

Nothing is fetched from elsewhere (no CDN), so it works on air-gapped hosts; the Content-Security-
Policy below makes that a property the browser enforces rather than a promise. The page and its
assets are open even when API keys are set: the page asks for the key and sends it to the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/web"

# 'self' only: the page talks to this service and nothing else. blob: for audio made in the page
# (streamed renders, history, recordings), which plays from object URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page is small and changes with the service: always revalidate (ETag) after an upgrade.
    "Cache-Control": "no-cache",
}


def mount_dashboard(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/web/`; neither appears in the OpenAPI document."""
    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(index, media_type="text/html", headers=_PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Pages that name no icon (Swagger, Gradio) make browsers ask here; a 404 is a console error.
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-assets")
