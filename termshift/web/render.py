"""Markdown of an archived version to HTML that is safe to show on the viewer's origin.

A version's Markdown is third-party text: it may contain raw HTML, `javascript:` links
or tracking images. It is rendered with markdown-it-py with raw HTML disabled, then
sanitised by nh3 with a short allow-list, whatever markdown-it produced. Images become
plain links: loading them would tell a third party who reads the archive.
"""

from __future__ import annotations

from html import escape

import nh3
from markdown_it import MarkdownIt

RENDER_FORMAT = 3  # bump when the HTML produced changes (it is cached by blob id)

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th",
    "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}


def _image_as_link(self, tokens, index, options, env) -> str:
    """`![alt](src)` → a link to the image, so nothing is fetched from a third party."""
    token = tokens[index]
    alternative = self.renderInlineAsText(token.children or [], options, env) or token.attrGet("src")
    return f'<a href="{escape(token.attrGet("src") or "")}">[{escape(alternative or "")}]</a>'


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "typographer": False}).enable("table")
    parser.add_render_rule("image", _image_as_link)
    return parser


_PARSER = _parser()


def sanitise(html: str, tags: set[str] = ALLOWED_TAGS) -> str:
    """Keep only harmless tags (`tags`: by default those of a version), attributes and
    absolute http(s)/mailto links."""
    return nh3.clean(
        html,
        tags=tags,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative="deny",  # a relative link would point into the viewer itself
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _demote_headings(tokens) -> None:
    """h1 → h2 … (h6 stays h6): the page has its own h1, the document's headings nest under it."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 1)}"


def markdown_to_html(markdown: str) -> str:
    """Render and sanitise a version's Markdown."""
    tokens = _PARSER.parse(markdown)
    _demote_headings(tokens)
    return sanitise(_PARSER.renderer.render(tokens, _PARSER.options, {}))
