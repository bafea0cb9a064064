"""Render an HTML file in headless Chromium, kept off the network: the DOM after load, and a screenshot.

Reusable by any test that checks a page as a person would see it (the bake-off report). Chromium is Debian's
`chromium` package; `.ci/run` installs it, so in CI (CI=true) its absence is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: Headless, and nothing that talks to the network or to a profile: every run is a fresh browser.
OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-extensions",
                 "--disable-default-apps", "--hide-scrollbars", "--mute-audio")
WINDOW = (1280, 2400)


@dataclass
class Rendered:
    """What Chromium made of a page: the serialized DOM after load, and the screenshot PNG."""

    dom: str
    screenshot: Path


def chromium() -> str:
    """The Chromium binary; skipped where it is absent, except in CI, where that is a failure."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium package "
                    "(apt-get install -y --no-install-recommends chromium)")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI installs it")


def _run(args: list[str], timeout_s: int) -> subprocess.CompletedProcess[str]:
    """One Chromium process with its own throwaway profile, killed if it hangs."""
    profile = tempfile.mkdtemp(prefix="uft-chromium-")
    try:
        argv = [chromium(), *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def render(html_file: Path, out_dir: Path, window: tuple[int, int] = WINDOW, timeout_s: int = 90) -> Rendered:
    """Load `html_file` in headless Chromium twice: once for the DOM (--dump-dom), once for a screenshot."""
    url = html_file.resolve().as_uri()
    dumped = _run(["--virtual-time-budget=3000", "--dump-dom", url], timeout_s)
    assert dumped.returncode == 0 and "<html" in dumped.stdout, f"chromium --dump-dom failed: {dumped.stderr[-2000:]}"
    shot = out_dir / f"{html_file.stem}.png"
    taken = _run([f"--screenshot={shot}", f"--window-size={window[0]},{window[1]}", url], timeout_s)
    assert taken.returncode == 0 and shot.exists(), f"chromium --screenshot failed: {taken.stderr[-2000:]}"
    return Rendered(dom=dumped.stdout, screenshot=shot)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (stdlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def png_distinct_rows(path: Path, sample_every: int = 8) -> int:
    """How many different pixel rows (every `sample_every`th) the PNG has: a blank page has one or two.

    Stdlib only: the IDAT stream is inflated and rows are compared as stored (filter byte + filtered bytes).
    Rows of one flat colour filter to the same bytes, so a blank page has very few distinct rows; text,
    tables and charts make hundreds."""
    data = path.read_bytes()
    width, height = png_size(path)
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    channels = {2: 3, 6: 4, 0: 1, 4: 2}[data[25]]
    stride = 1 + width * channels * (data[24] // 8)
    rows = {raw[y * stride:(y + 1) * stride] for y in range(0, height, sample_every)}
    return len(rows)


# --- a small DOM, from the stdlib's html.parser ---------------------------------------------------------

#: HTML elements that never have children (no end tag).
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    """One element: its tag, attributes, children and text (enough to check a page's structure)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node]
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self) -> Iterator[Node]:
        """This element and every element inside it, in document order."""
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, id: str | None = None, cls: str | None = None) -> list[Node]:
        return [n for n in self.iter() if (tag is None or n.tag == tag) and (id is None or n.attrs.get("id") == id)
                and (cls is None or cls in n.classes)]

    def find(self, tag: str | None = None, id: str | None = None, cls: str | None = None) -> Node:
        found = self.find_all(tag, id, cls)
        assert found, f"no <{tag or '*'} id={id} class={cls}> in the page"
        return found[0]

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, [])
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, [])
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}, []))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):  # close up to the matching element (HTML's implied ends)
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, [], data))


def parse_html(html: str) -> Node:
    """The page as a tree of `Node`s (the document root)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
