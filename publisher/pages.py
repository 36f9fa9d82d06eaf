"""What publisher's own endpoints share: the pages (unsubscribe, sign-up, preferences) and the
providers' webhooks.

The pages' one template environment, and the headers each is served with: nothing is cached or
referred, and the Content-Security-Policy allows no script, frame or foreign form, the page's
own stylesheet (by the SHA-256 of its ``<style>`` blocks) and no other. And :func:`body`, a
request's body read no further than a limit.
"""

from __future__ import annotations

import base64
import hashlib
import re

import jinja2
from starlette.requests import ClientDisconnect, Request

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("publisher.templates", "."), autoescape=True, undefined=jinja2.StrictUndefined
)


def _style_hashes(template: str) -> str:
    """CSP sources for the <style> blocks of ``template``: theirs alone, by SHA-256."""
    source = TEMPLATES.loader.get_source(TEMPLATES, template)[0] if TEMPLATES.loader else ""
    blocks = re.findall(r"<style>(.*?)</style>", source, flags=re.DOTALL)
    return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)


def headers(template: str) -> dict[str, str]:
    """The response headers of the page rendered from ``template``."""
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {_style_hashes(template)}; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex",
    }


async def body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None when it is over ``limit`` bytes: a Content-Length over it is
    not read at all, and a body that turns out longer is read no further. A client gone
    mid-body gives an empty one."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)
