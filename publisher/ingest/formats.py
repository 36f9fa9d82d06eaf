"""One reader per source format: raw bytes -> :class:`Draft` (title, clean body, metadata).

- ``.txt``: the first non-empty line is the title; paragraphs are separated by blank lines.
- ``.md``/``.markdown``: optional YAML front matter (title, date, author, tags, summary, slug,
  draft; other keys, such as Jekyll's layout, are ignored);
  without a ``title`` the first top-level ``# heading`` (or setext ``===`` heading) is the
  title, as plain text. Body is CommonMark (+ tables, strikethrough); raw HTML in it is
  allowed and then sanitized like everything else.
- ``.html``/``.htm``: the page's headline and main text (see :mod:`publisher.ingest.extract`).

Readers raise ``ValueError`` with a short reason; the caller adds the file name.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import lxml.html
import yaml
from markdown_it import MarkdownIt

from publisher.ingest.clean import Body, clean_body, is_chrome
from publisher.ingest.decode import decode, strip_illegal
from publisher.ingest.extract import Page, extract
from publisher.store import ArticleMeta, AudioMeta

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL | re.MULTILINE)
_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_YAML_VALUE_CHARS = 40  # of a bad value quoted in an error


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader whose impossible values are YAML errors with a line number.

    PyYAML builds dates and numbers with ``datetime()`` and ``int()``, which raise a bare
    ValueError for ``2001-02-30`` or a number of 5000 digits.
    """


_Construct = Callable[[yaml.SafeLoader, yaml.ScalarNode], Any]


def _checked(kind: str, construct: _Construct) -> _Construct:
    def checked(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as exc:
            value = node.value if len(node.value) <= _YAML_VALUE_CHARS else node.value[:_YAML_VALUE_CHARS] + "…"
            why = f"not a real date ({exc})" if kind == "timestamp" else f"not a usable {kind}"
            raise yaml.constructor.ConstructorError(None, None, f"{value!r} is {why}", node.start_mark) from None

    return checked


# libyaml's parser, where PyYAML was built with it: the pure-Python one costs about a
# millisecond per front matter. Only its successes are used (see _load_front_matter).
_FastLoader: type[yaml.CSafeLoader] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CFrontMatterLoader(yaml.CSafeLoader):
        """_FrontMatterLoader's checks on libyaml's parser."""

    _FastLoader = _CFrontMatterLoader

_YAML_DISAGREE = re.compile(r"[!|>]")
_FAST_MAX_DEPTH = 32  # nesting that the pure loader handles without nearing the recursion limit

for _kind in ("timestamp", "int", "float"):
    _tag = f"tag:yaml.org,2002:{_kind}"
    for _loader in (_FrontMatterLoader, _FastLoader):
        if _loader is not None:
            _loader.add_constructor(_tag, _checked(_kind, yaml.SafeLoader.yaml_constructors[_tag]))


@dataclass
class Draft:
    """An article as read from its source, before it is stored."""

    title: str
    body: Body
    format: str
    published: datetime | None = None
    author: str | None = None
    summary: str | None = None
    slug: str | None = None
    tags: list[str] = field(default_factory=list)
    draft: bool = False  # front matter `draft: true`: kept out of the feeds and digests
    meta: ArticleMeta = field(default_factory=lambda: ArticleMeta())


def read(path: Path, data: bytes, tz: ZoneInfo) -> Draft:
    """Parse ``data`` (the bytes of ``path``) by its suffix; raises ValueError."""
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ValueError(f"unsupported file type {path.suffix!r} (use .txt, .md or .html)")
    kind, reader = found
    if not data:
        raise ValueError("empty file")
    text = decode(data, html=kind == "html")
    if not text.strip():
        raise ValueError("empty file (only whitespace)")
    draft = reader(text, tz)
    if not draft.title:
        raise ValueError("no title")
    if not draft.body.paragraphs and "<img" not in draft.body.html:
        raise ValueError(f"title {draft.title!r} has no article text")
    return draft


def _read_txt(text: str, tz: ZoneInfo) -> Draft:
    lines = text.strip().split("\n")
    # A page saved as text often starts with its chrome ("Skip to content"): not the title.
    while len(lines) > 1 and (not lines[0].strip() or is_chrome(lines[0])):
        lines.pop(0)
    title = " ".join(lines[0].split())
    paragraphs = re.split(r"\n[ \t]*\n", "\n".join(lines[1:]))
    body = "".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs if p.strip())
    return Draft(title=title, body=clean_body(body, title=title), format="txt")


def _read_md(text: str, tz: ZoneInfo) -> Draft:
    meta: dict[str, Any] = {}
    if text.startswith("---"):
        match = _FRONT_MATTER.match(text)
        if not match:
            raise ValueError("broken front matter: no closing '---' line")
        try:
            loaded = _load_front_matter(match.group(1))
        except yaml.YAMLError as exc:
            raise ValueError(f"broken front matter: {_yaml_reason(exc)}") from None
        except RecursionError:  # PyYAML composes nested collections recursively
            raise ValueError("broken front matter: nested too deeply") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError("broken front matter: expected 'key: value' lines")
        meta = loaded or {}
        text = text[match.end() :]
    title = _meta_str(meta, "title")
    rendered = None
    if not title:
        title, text, rendered = _take_heading(text)
    return Draft(
        title=_plain(title or ""),
        body=clean_body(_markdown.render(text) if rendered is None else rendered, title=_plain(title or "")),
        format="md",
        published=_meta_date(meta, "date", tz),
        author=_meta_str(meta, "author"),
        summary=_meta_str(meta, "summary"),
        slug=_meta_str(meta, "slug"),
        tags=_meta_tags(meta),
        draft=_meta_flag(meta, "draft"),
        meta=_article_meta(meta, tz),
    )


def _load_front_matter(text: str) -> Any:
    """The YAML in ``text``, as the pure-Python _FrontMatterLoader (a SafeLoader) reads it.

    libyaml reads it first. Whatever it cannot read, and anything nested deeply, is read again
    by the pure loader, so that errors (and their wording and line numbers) stay the same.
    """
    if _FastLoader is not None and _plain_yaml(text):
        try:
            loaded = yaml.load(text, Loader=_FastLoader)
        except Exception:  # the pure loader below decides, and words the error
            pass
        else:
            if not _deeper_than(loaded, _FAST_MAX_DEPTH):
                return loaded
    return yaml.load(text, Loader=_FrontMatterLoader)


def _plain_yaml(text: str) -> bool:
    """Front matter that libyaml and PyYAML read alike: no tabs or other unprintable characters,
    no tags (``!``) and no block scalars (``|``, ``>``), where the two were seen to disagree."""
    return not _YAML_DISAGREE.search(text) and text.replace("\n", "").isprintable()


def _deeper_than(value: object, limit: int) -> bool:
    """True if ``value`` nests lists and dicts more than ``limit`` deep (or refers to itself)."""
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_deeper_than(k, limit - 1) or _deeper_than(v, limit - 1) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(_deeper_than(item, limit - 1) for item in value)
    return False


def _take_heading(text: str) -> tuple[str | None, str, str | None]:
    """The first top-level h1 of ``text`` as plain text, ``text`` without it, and that text
    rendered when it could be had from the tokens already parsed (else None: render it).

    Without a heading, or with only blank lines before it, the tokens after the heading are
    what parsing the text without it gives: they are rendered instead of parsing it again.
    """
    env: dict[str, Any] = {}
    tokens = _markdown.parse(text, env)
    for index, (opening, inline) in enumerate(itertools.pairwise(tokens)):
        if opening.type == "heading_open" and opening.tag == "h1" and opening.level == 0 and opening.map:
            rendered = _markdown.renderer.render([inline], _markdown.options, {})
            title = lxml.html.fragment_fromstring(rendered, create_parent="div").text_content() if rendered else ""
            lines = text.split("\n")
            start, end = opening.map
            rest = "\n".join(lines[:start] + lines[end:])
            if index == 0 and not "".join(lines[:start]).strip():
                return title, rest, _markdown.renderer.render(tokens[3:], _markdown.options, env)
            return title, rest, None
    return None, text, _markdown.renderer.render(tokens, _markdown.options, env)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and on which line of the file (the opening --- is line 1)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.context_mark or exc.problem_mark
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        return f"invalid YAML{where}: {what}"
    return f"invalid YAML: {' '.join(str(exc).split())}"


def _read_html(text: str, tz: ZoneInfo) -> Draft:
    page = extract(text)
    title = _plain(page.title)
    body = clean_body(page.body_html, title=title)
    try:
        published = _to_datetime(page.date, tz) if page.date else None
    except ValueError:
        published = None  # a page's own date markup is often junk; fall back to first seen
    return Draft(
        title=title,
        body=body,
        format="html",
        published=published,
        author=_plain(page.author) if page.author else None,
        summary=_plain(page.summary) if page.summary else None,
        tags=page.tags,
        meta=_page_meta(page),
    )


def _page_meta(page: Page) -> ArticleMeta:
    """What the page says of itself, as ArticleMeta; URLs only when http(s) or a path on the site."""
    info = page.info
    found = ArticleMeta()
    if info.language and _LANGUAGE.fullmatch(info.language):
        found["language"] = info.language
    if info.direction in ("ltr", "rtl"):
        found["direction"] = info.direction
    for key, value in (("image", info.image), ("canonical", info.canonical)):
        url = _plain(value) if value else ""
        scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
        if url and scheme in ("", "http", "https") and not url.startswith("//"):
            found[key] = url  # type: ignore[literal-required]
    if info.image_alt and "image" in found:
        found["image_alt"] = _plain(info.image_alt)
    if info.modified:
        found["modified"] = _plain(info.modified)
    if info.description:
        found["description"] = _plain(info.description)
    return found


def _plain(text: str) -> str:
    """One line of plain text: markup-free titles never carry CR/LF into email headers."""
    # YAML and JSON write astral characters as "\ud83d\ude00" escape pairs: join them back
    # (a lone half stays one, and strip_illegal drops it).
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    return " ".join(strip_illegal(text).split())


def _meta_str(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"front matter: {key} must be text, got {type(value).__name__}")
    return _plain(str(value)) or None


def _article_meta(meta: dict[str, Any], tz: ZoneInfo) -> ArticleMeta:
    """Front matter's lang, dir, image (a URL, or url + alt), audio (a URL, or url, type,
    length, duration), canonical and modified (or Hugo's lastmod, Jekyll's updated), checked:
    a URL must be http(s) or a path on the site, a date a date."""
    found = ArticleMeta()
    for key in ("modified", "lastmod", "updated"):
        changed = _meta_date(meta, key, tz)
        if changed is not None:
            found["modified"] = changed.astimezone(UTC).isoformat()
            break
    language = _meta_str(meta, "lang") or _meta_str(meta, "language")
    if language:
        if not _LANGUAGE.fullmatch(language):
            raise ValueError(f"front matter: lang must be a language tag such as en or pt-BR, got {language!r}")
        found["language"] = language
    direction = _meta_str(meta, "dir")
    if direction:
        if direction.lower() not in ("ltr", "rtl"):
            raise ValueError(f"front matter: dir must be ltr or rtl, got {direction!r}")
        found["direction"] = direction.lower()
    image = meta.get("image")
    if isinstance(image, dict):
        found["image"] = _meta_url(image, "url", "image") or _meta_url(image, "src", "image") or ""
        alt = _meta_str(image, "alt")
        if alt:
            found["image_alt"] = alt
    elif image is not None:
        found["image"] = _meta_url(meta, "image", "image") or ""
    if image_alt := _meta_str(meta, "image_alt"):
        found["image_alt"] = image_alt
    if not found.get("image"):
        found.pop("image", None)
    for key in ("audio", "enclosure"):
        audio = meta.get(key)
        if audio is None:
            continue
        fields = audio if isinstance(audio, dict) else {"url": audio}
        url = _meta_url(fields, "url", key)
        if not url:
            raise ValueError(f"front matter: {key} needs a url")
        entry = AudioMeta(url=url, type=_meta_str(fields, "type") or _audio_type(url))
        length = fields.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise ValueError(f"front matter: {key} length must be a number of bytes")
            entry["length"] = length
        duration = _meta_str(fields, "duration")
        if duration:
            entry["duration"] = duration
        found["audio"] = entry
        break
    canonical = _meta_url(meta, "canonical", "canonical") or _meta_url(meta, "canonical_url", "canonical_url")
    if canonical:
        found["canonical"] = canonical
    return found


_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
}


def _audio_type(url: str) -> str:
    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    return _AUDIO_TYPES.get(suffix, "audio/mpeg")


def _meta_url(meta: dict[str, Any], key: str, name: str) -> str | None:
    """An http(s) URL or a path on the site (``/media/a.jpg``, ``a.jpg``); anything else refused."""
    value = _meta_str(meta, key)
    if value is None:
        return None
    scheme = value.split(":", 1)[0].lower() if ":" in value.split("/", 1)[0] else ""
    if scheme not in ("", "http", "https") or value.startswith("//"):
        raise ValueError(f"front matter: {name} must be an http(s) URL or a path on the site, got {value[:80]!r}")
    return value


def _meta_flag(meta: dict[str, Any], key: str) -> bool:
    """A true/false key; anything else is refused rather than guessed (a draft mailed by
    mistake cannot be recalled)."""
    value = meta.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"front matter: {key} must be true or false, got {str(value)[:_YAML_VALUE_CHARS]!r}")
    return value


def _meta_tags(meta: dict[str, Any]) -> list[str]:
    value = meta.get("tags")
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str | int | float) for t in value):
        raise ValueError("front matter: tags must be a list of words")
    tags = (_plain(str(t)) for t in value)
    return [tag for tag in tags if tag]


def _meta_date(meta: dict[str, Any], key: str, tz: ZoneInfo) -> datetime | None:
    value = meta.get(key)
    if value is None:
        return None
    try:
        return _to_datetime(value, tz)
    except ValueError as exc:
        raise ValueError(f"front matter: {key} {exc}") from None


def _to_datetime(value: object, tz: ZoneInfo) -> datetime:
    """A date, datetime or ISO 8601 string -> aware datetime (naive ones are in ``tz``)."""
    shown = value.isoformat() if isinstance(value, date) else value  # YAML reads dates itself
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"is not a date: {shown!r}") from None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=tz)
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0, 0), tzinfo=tz)
    else:
        raise ValueError(f"is not a date: {shown!r}")
    try:
        moment.astimezone(UTC)  # the store keeps UTC: 0001-01-01T00:00+01:00 has none
    except OverflowError:
        raise ValueError(f"is out of range: {shown!r}") from None
    return moment


_Reader = Callable[[str, ZoneInfo], Draft]
# The one registry: a file's suffix -> its format's name (the decoder's hint) and its reader.
SUFFIXES: dict[str, tuple[str, _Reader]] = {
    ".txt": ("txt", _read_txt),
    ".md": ("md", _read_md),
    ".markdown": ("md", _read_md),
    ".html": ("html", _read_html),
    ".htm": ("html", _read_html),
}
