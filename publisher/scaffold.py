"""``publisher init``: a new project folder, from files shipped inside the package.

The files live in ``publisher/skeleton/`` (package data, so a wheel has them): a commented
``publisher.toml`` listing every key with its default, and one example article dated now,
so that the first ``publisher run`` puts it in the feeds and in the first digest (which only
takes articles newer than ``[digest] backlog``). Nothing that exists is overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from publisher.errors import ConfigError, PublisherError

CONFIG = "publisher.toml"
ARTICLE = Path("articles") / "hello.md"


@dataclass
class Created:
    root: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # there already: left as they were


def skeleton(name: str) -> str:
    """A file of the skeleton, as text."""
    return resources.files("publisher").joinpath("skeleton", name).read_text(encoding="utf-8")


def init(root: Path, now: datetime, source: str | None = None) -> Created:
    """Write publisher.toml and articles/hello.md under ``root``, skipping any that exists.

    An existing publisher.toml is kept as it is: the project is there already, so the
    example article is not added either. With ``source`` (a feed's URL) the project is a
    newsletter from that feed: publisher.toml gets a ``[[sources]]`` block for it, and
    articles/ is left empty.
    """
    if source is not None and (urlsplit(source).scheme not in ("http", "https") or not urlsplit(source).netloc):
        raise ConfigError("--source", f"expected the http(s) URL of a feed, got {source!r}")
    if root.exists() and not root.is_dir():
        raise PublisherError(f"{root}: not a folder (give a folder to create the project in)")
    created = Created(root=root)
    config = root / CONFIG
    if config.exists():
        created.kept.append(config)
        return created
    files = {config: skeleton(CONFIG), root / ARTICLE: skeleton("hello.md").replace("{date}", now.isoformat())}
    if source is not None:
        del files[root / ARTICLE]
        (root / ARTICLE.parent).mkdir(parents=True, exist_ok=True)
        files[config] += f'\n[[sources]]\nname = "blog"\nurl = {json.dumps(source)}\n'  # a JSON string is a TOML one
    for path, text in files.items():
        if path.exists():
            created.kept.append(path)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            written = _write_new(path, text.encode("utf-8"))
        except OSError as exc:
            raise PublisherError(f"{path}: cannot be written: {exc.strerror or exc}") from None
        (created.written if written else created.kept).append(path)
    return created


def _write_new(path: Path, data: bytes) -> bool:
    """Write ``path`` whole, unless it exists (False): a temp file linked into place, since
    a link, unlike a rename, never replaces a file that appeared meanwhile."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)
    return True
