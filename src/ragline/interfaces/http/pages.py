"""The cited passage on its page: the PDF page as PNG, and where a passage stands on it.

``GET /v1/pages`` and ``GET /v1/pages/boxes`` serve the page's citations and any other front end
(``query/pages.py`` does the work).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from ragline.interfaces.http.contract import errors_for
from ragline.query.pages import PageViews

if TYPE_CHECKING:
    from ragline.interfaces.http.app import Service

Page = Annotated[int, Query(ge=1, le=100_000, description="page number, from 1")]


def add_page_routes(app: FastAPI, service: Service) -> None:
    """Mount ``/v1/pages`` and ``/v1/pages/boxes``."""

    def views(request: Request) -> PageViews:
        from ragline.ingest.ocr import ocr_engine

        view = service.rag.for_tenant(service.tenant(request))
        s = service.settings
        return PageViews(view.registry, view.originals, s.home / "cache" / "pages", view.settings.tenant,
                         ocr_engine(s.ocr, s.ocr_languages, s.aws_region, s.endpoint_for("textract")))

    @app.get("/v1/pages", response_class=Response, responses={
        200: {"content": {"image/png": {}}, "description": "the page, rendered"}, **errors_for(404, 415, 422)})
    async def page_image(request: Request, doc_id: Annotated[str, Query(max_length=1024)], page: Page) -> Response:
        """A page of a PDF document as PNG (rendered by pdfium, cached)."""
        png = await anyio.to_thread.run_sync(views(request).image, doc_id, page)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/v1/pages/boxes", responses=errors_for(404, 415, 422))
    async def page_boxes(request: Request, doc_id: Annotated[str, Query(max_length=1024)], page: Page,
                         text: Annotated[str, Query(min_length=1, max_length=8000)]) -> dict[str, Any]:
        """Where ``text`` (a source's excerpt) stands on the page: rectangles in the rendered image's pixels."""
        return await anyio.to_thread.run_sync(views(request).boxes, doc_id, page, text)
