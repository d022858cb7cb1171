"""MkDocs hook: pages include the README's sections (and the module READMEs) instead of copying them.

A line ``<!-- include: README.md#Heading text -->`` becomes the README section whose heading starts with
``Heading text`` (down to the next heading of the same or a higher level); ``<!-- include: path -->``
includes a whole Markdown file. Links are rewritten for the site: ``docs/figures/x.png`` -> ``figures/x.png``
(relative to the docs folder), links to other repository files become plain code text (the site has no
copy of them). An include that names a missing file or heading is an error, so the strict build fails
when the README and the site drift apart.
"""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r"^<!-- include: (?P<path>[^#\s]+)(?:#(?P<heading>[^>]+?))? -->\s*$", re.MULTILINE)
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
# repository files that the site carries as pages of their own
PAGES = {"gm/temporal/README.md": "rooms/temporal-details.md", "gm/learn/README.md": "rooms/learn-details.md",
         "README.md": "index.md"}


def _section(text: str, heading: str, path: str) -> str:
    lines = text.splitlines()
    in_code = False
    start = level = None
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        if in_code:
            continue
        m = re.match(r"^(#+) (.*)$", line)
        if not m:
            continue
        if start is None and m.group(2).startswith(heading):
            start, level = i, len(m.group(1))
        elif start is not None and len(m.group(1)) <= level:
            return "\n".join(lines[start:i])
    if start is None:
        raise ValueError(f"docs include: no heading starting with {heading!r} in {path}")
    return "\n".join(lines[start:])


def _rewrite_links(text: str, depth: int) -> str:
    up = "../" * depth

    def fix(m):
        bang, label, target = m.groups()
        if re.match(r"^[a-z]+://|^#|^mailto:", target):
            return m.group(0)
        if target.startswith("docs/"):
            return f"{bang}[{label}]({up}{target[len('docs/'):]})"
        if target in PAGES:
            return f"[{label}]({up}{PAGES[target]})"
        return f"{label} (`{target}`)" if not bang else m.group(0)

    return LINK.sub(fix, text)


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")

    def include(m):
        path = m.group("path")
        source = ROOT / path
        if not source.is_file():
            raise ValueError(f"docs include: {path} does not exist (page {page.file.src_uri})")
        text = source.read_text()
        if m.group("heading"):
            text = _section(text, m.group("heading").strip(), path)
        return _rewrite_links(text, depth)

    return INCLUDE.sub(include, markdown)
