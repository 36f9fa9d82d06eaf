"""Where an article lives on the site, and the permanent id its feed entry carries."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote, urljoin, urlsplit

import lxml.html

from publisher.config import SiteConfig
from publisher.store import Article

REMOTE_KEY_PREFIX = "feed:"  # the keys of articles from remote feeds (publisher.sources.articles)


def article_url(site: SiteConfig, article: Article) -> str:
    """``site.url`` + ``site.article_path`` filled in, e.g. https://news.example.org/my-slug/;
    for an article from a remote feed ([[sources]]), the item's own page."""
    if article.key.startswith(REMOTE_KEY_PREFIX) and article.meta.get("canonical"):
        return article.meta["canonical"]
    published = article.published.astimezone(site.timezone)
    path = site.article_path.format(
        slug=article.slug, year=f"{published:%Y}", month=f"{published:%m}", day=f"{published:%d}"
    )
    return urljoin(site.url, quote(path, safe="/-._~%"))


def entry_id(site: SiteConfig, article: Article) -> str:
    """An RFC 4151 tag URI: stays the same when the title, slug or site layout changes."""
    return f"tag:{_host(site.url)},{article.first_seen:%Y-%m-%d}:{quote(article.key, safe='/')}"


@lru_cache(maxsize=16)
def _host(url: str) -> str:
    """The site's host name (parsed once, not once per entry)."""
    return urlsplit(url).hostname or "localhost"


def absolute_html(html: str, base: str) -> str:
    """``html`` with relative links and image sources made absolute against ``base``.

    Feed readers and mail clients ignore xml:base and have no page to resolve against.
    """
    if not html.strip():
        return html
    wrapper = lxml.html.fragment_fromstring(html, create_parent="div")
    wrapper.make_links_absolute(base, resolve_base_href=False)
    text = wrapper.text or ""
    return text + "".join(lxml.html.tostring(child, encoding="unicode") for child in wrapper)
