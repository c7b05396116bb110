"""From a snapshot to the Markdown of a version: OTA's extraction pipeline (reference §2.4).

HTML goes through these steps, in OTA's exact order, on one lxml tree:

1. parse, with the document's location as base URL;
2. the declaration's filters (they see scripts, relative links and e-mail protection markup);
3. make `a[href]` absolute (WHATWG-style resolution; `#…`, empty and unparsable hrefs stay);
4. drop every `script` and `style`;
5. neutralise Cloudflare e-mail protection links (their per-request token changes);
6. `remove`, then 7. `select` (termshift.selectors.selection);
8. convert the selection to Markdown (termshift.trackers.markdown).

PDF snapshots (MIME subtype `pdf`, parameters ignored) go to termshift.trackers.pdf instead.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import lxml.html
from lxml import etree

from termshift import jsfilters
from termshift.errors import ExtractError
from termshift.filters import apply_filters
from termshift.selectors import selection
from termshift.trackers.markdown import to_markdown
from termshift.trackers.pdf import pdf_to_text

if TYPE_CHECKING:
    from termshift.declarations import SourceDocument

ServiceFilters = Mapping[str, Callable[..., Any]]

__all__ = ["extract", "extract_html", "is_pdf", "parse_html", "resolve_url"]

# Parsing from UTF-8 bytes with the encoding forced makes lxml ignore any declaration in
# the page (`<?xml encoding=…?>`, `<meta charset>`): a snapshot is already decoded text.
# Both parsers build the same tree; lxml.html's gives filters the `HtmlElement` API, at the
# cost of a Python call for every element object created, so it is used only for filters.
_HTML_ELEMENT_PARSER = lxml.html.HTMLParser(encoding="utf-8", no_network=True)
_FAST_PARSER = etree.HTMLParser(encoding="utf-8", no_network=True)
_EMPTY_PAGE = b"<html></html>"
# libxml2 drops everything after a `</html>` end tag and puts what follows `</body>` outside
# the body; the HTML standard (and so jsdom) keeps both in the body. Without these end tags,
# libxml2 builds the standard's tree. (Inside a script, "</body>" would be lost too, but
# scripts are discarded.)
_BODY_AND_HTML_END_TAGS = re.compile(rb"</(?:body|html)(?:[\s/][^>]*)?>", re.IGNORECASE)
_EMAIL_PROTECTION_TEXT = "[email\u00a0protected]"


def extract(
    content: str | bytes,
    mime_type: str,
    document: SourceDocument,
    service_filters: ServiceFilters | None = None,
) -> str:
    """The Markdown of `content`, a snapshot of `document`; `service_filters` are the
    functions of the service's filters file, by name.

    Raises ExtractError with OTA's messages when the selection is empty or missing, a
    selector is invalid, a filter fails, or a PDF has no text or cannot be parsed.
    """
    if is_pdf(mime_type):
        return pdf_to_text(_as_bytes(content), document.location)
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    return extract_html(content, document, service_filters)


def is_pdf(mime_type: str) -> bool:
    """OTA's `mime.getExtension(type) === "pdf"`: the subtype decides, parameters are ignored."""
    media_type = mime_type.split(";", 1)[0].strip().lower()
    return media_type.partition("/")[2] == "pdf"


def extract_html(
    content: str, document: SourceDocument, service_filters: ServiceFilters | None = None
) -> str:
    """Steps 1–8 of the HTML pipeline; see the module docstring."""
    location = document.location
    applied = 0
    if document.filters:  # JavaScript filters first in the list see the page as fetched (jsdom's DOM)
        try:
            content, applied = jsfilters.apply_leading(content, document, service_filters)
        except (jsfilters.JsFilterFailure, jsfilters.JsFiltersUnavailable) as error:
            name = getattr(error, "name", "") or document.filters[0].name
            raise ExtractError(f'The filter function "{name}" failed: '
                               f'{getattr(error, "filter_error_text", None) or error}') from error
    root = parse_html(content, location, html_elements=len(document.filters) > applied)
    if len(document.filters) > applied:
        apply_filters(root, document, service_filters, start=applied)
    _clean_links_and_scripts(root, location)
    selection.remove(root, document.remove)
    container = root.makeelement("div", {})
    selection.build_fragment(container, selection.select(root, document.select, keep_document=False))
    if not any(isinstance(child.tag, str) for child in container):
        raise ExtractError(
            f'The provided selector "{_describe(document.select)}" has no match in the web page '
            f"at '{location}'. This could be due to elements being removed before content "
            'selection if "remove" and "select" selectors match the same content.'
        )
    markdown = _MARKDOWN_MEMO.convert(container)
    if not markdown.strip():
        raise ExtractError(
            f'The provided selector "{_describe(document.select)}" matches an empty content '
            f"in the web page at '{location}'"
        )
    return markdown


class _MarkdownMemo:
    """Markdown of recently converted selections, keyed by a digest of their serialisation.

    Most snapshots of a document differ from the previous one only outside the selected
    part (scripts, tokens, ads): on OTA's demo history 98 % of selections repeat. Serialising
    a selection costs a small fraction of converting it, and the conversion is a pure
    function of the selected tree, so a repeated selection is converted once.
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def convert(self, container: etree._Element) -> str:
        key = hashlib.blake2b(etree.tostring(container, encoding="utf-8"), digest_size=20).digest()
        with self._lock:
            markdown = self._entries.get(key)
            if markdown is not None:
                self._entries.move_to_end(key)
                return markdown
        markdown = to_markdown(container)
        with self._lock:
            self._entries[key] = markdown
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return markdown


_MARKDOWN_MEMO = _MarkdownMemo()


def parse_html(content: str, location: str, *, html_elements: bool = True) -> etree._Element:
    """The `<html>` element of the page, its `base_url` set to the document's location.

    With `html_elements`, the tree is made of `lxml.html.HtmlElement`s, as filters expect;
    without, of plain lxml elements, which is faster for the same tree.
    """
    if "\x00" in content:  # libxml2 stops at NUL; the HTML standard reads U+FFFD instead
        content = content.replace("\x00", "\ufffd")
    data = _BODY_AND_HTML_END_TAGS.sub(b"", content.encode("utf-8", errors="replace"))
    parser = _HTML_ELEMENT_PARSER if html_elements else _FAST_PARSER
    root = etree.fromstring(data or _EMPTY_PAGE, parser, base_url=location)
    if root is None:  # nothing parsable (only whitespace or a comment): an empty page
        root = etree.fromstring(_EMPTY_PAGE, parser, base_url=location)
    return root


def _describe(selector: Any) -> str:
    """A declared selector as OTA's messages show it.

    OTA interpolates the selector into a JavaScript template string, so a list shows as its
    items joined by commas (`["main"]` shows as `main`, as in OTA's recorded errors). A range
    would show as `[object Object]`; it is shown as compact JSON instead.
    """
    if isinstance(selector, str):
        return selector
    if isinstance(selector, list):
        return ",".join(_describe(item) for item in selector)
    return selection.selector_to_json(selector)


# --- Steps 3 to 5: links, scripts and styles, e-mail protection ------------------------------


def _clean_links_and_scripts(root: etree._Element, location: str) -> None:
    """Steps 3–5, from a single walk over the tree.

    Template contents are dropped here too: browsers (and jsdom) keep them out of the
    document tree, in `template.content`, out of reach of selectors and of the conversion.
    """
    links: list[etree._Element] = []
    scripts: list[etree._Element] = []
    templates: list[etree._Element] = []
    base_href = None
    for element in root.iter("a", "script", "style", "template", "base"):
        tag = element.tag
        if tag == "a":
            links.append(element)
        elif tag == "template":
            templates.append(element)
        elif tag == "base":
            if base_href is None:
                base_href = element.get("href")
        else:
            scripts.append(element)
    for template in templates:
        template.text = None
        for child in list(template):
            template.remove(child)  # with its tail: all of it is template content
    _absolutise(links, _document_base_url(base_href, location))
    for script in scripts:
        selection.remove_node(script)  # the text after it stays, as its own text node (DOM remove())
    for link in links:
        if "/email-protection" in link.get("href", ""):
            _clean_email_protection(link)


def _absolutise(links: list[etree._Element], base_url: str) -> None:
    """`link.href = new URL(link.href, base).href` for links not starting with `#`, not empty."""
    for link in links:  # the hottest loop of the pipeline: hundreds of links per page
        href = link.get("href")
        if href and href[0] != "#":
            resolved = resolve_url(href, base_url)
            if resolved is not None and resolved != href:
                link.set("href", resolved)


def _clean_email_protection(link: etree._Element) -> None:
    """Cloudflare obfuscates addresses with a per-request token: keep a stable placeholder."""
    link.set("href", link.get("href").split("#", 1)[0])
    for child in list(link):
        link.remove(child)
    link.text = _EMAIL_PROTECTION_TEXT


def _document_base_url(base_href: str | None, location: str) -> str:
    """The URL links resolve against: the first `<base href>` resolved against the location.

    Browsers (and jsdom, through `link.href`) resolve links against it.
    """
    if base_href is None:
        return location
    return resolve_url(base_href, location) or location


# --- WHATWG-style URL resolution -------------------------------------------------------------

_SPECIAL_SCHEMES = {"http": "80", "https": "443", "ws": "80", "wss": "443", "ftp": "21"}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_LEADING_AND_TRAILING = "".join(chr(code) for code in range(0x21))  # C0 controls and space
_TAB_AND_NEWLINES = str.maketrans("", "", "\t\n\r")
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]*")
# The standard's percent-encode sets; code points above U+007E are always encoded.
_C0_CONTROLS = frozenset(chr(code) for code in range(0x20))
_FRAGMENT_SET = _C0_CONTROLS | set(' "<>`')
_QUERY_SET = _C0_CONTROLS | set(' "#<>')
_SPECIAL_QUERY_SET = _QUERY_SET | {"'"}
_PATH_SET = _QUERY_SET | set("?`{}")
_USERINFO_SET = _PATH_SET | set("/:;=@[\\]^|")


@functools.lru_cache(maxsize=16384)
def resolve_url(href: str, base: str) -> str | None:
    """`new URL(href, base).href`, close to the WHATWG URL standard; None when unparsable.

    Covers what matters for links in snapshots: relative resolution, lower-cased scheme and
    host, default ports dropped, dot segments removed, an empty path becoming `/`, `\\` read
    as `/`, and the standard's percent-encoding of spaces, quotes and non-ASCII characters.
    Hosts with forbidden characters, bad ports and invalid IPv6 literals are unparsable.
    Not covered: IPv4 number forms such as `0x7f.1`, and UTS 46 host mapping beyond IDNA.
    """
    href = href.strip(_LEADING_AND_TRAILING).translate(_TAB_AND_NEWLINES)
    match = _SCHEME.match(href)
    scheme = match.group()[:-1].lower() if match else None
    base_scheme = base.split(":", 1)[0].lower()
    if base_scheme in _SPECIAL_SCHEMES:
        if scheme is None:
            href = _join(base, href)
            scheme = base_scheme
        elif scheme == base_scheme and not href[len(scheme) + 1 :].startswith(("/", "\\")):
            href = _join(base, href[len(scheme) + 1 :])  # `https:page` is relative to an https base
    if scheme is None:
        return None  # relative to a base that cannot be a base: not a valid URL
    rest = href[len(scheme) + 1 :]
    if scheme in _SPECIAL_SCHEMES:
        return _serialise_special(scheme, rest)
    if scheme == "file":
        return "file:" + rest
    return _serialise_non_special(scheme, rest)


def _join(base: str, reference: str) -> str:
    """A reference made absolute against a special base URL, before normalisation."""
    reference = _backslashes_to_slashes(reference)
    scheme, _, rest = base.partition(":")
    if reference.startswith("//"):
        return f"{scheme}:{reference}"
    base = base.split("#", 1)[0]
    if not reference or reference.startswith("#"):
        return base + reference
    base = base.split("?", 1)[0]
    if reference.startswith("?"):
        return base + reference
    authority_start = len(scheme) + 1 + (len(rest) - len(rest.lstrip("/\\")))
    path_start = base.find("/", authority_start)
    origin, path = (base, "/") if path_start < 0 else (base[:path_start], base[path_start:])
    if reference.startswith("/"):
        return origin + reference
    return origin + path[: path.rfind("/") + 1] + reference


def _backslashes_to_slashes(url: str) -> str:
    """Special URLs read `\\` as `/` before their query and fragment."""
    if "\\" not in url:
        return url
    end = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    return url[:end].replace("\\", "/") + url[end:]


def _serialise_special(scheme: str, rest: str) -> str | None:
    rest = _backslashes_to_slashes(rest).lstrip("/")
    rest, fragment = _split_off(rest, "#")
    rest, query = _split_off(rest, "?")
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    userinfo, _, host_and_port = authority.rpartition("@")
    host, port = _split_host_and_port(host_and_port)
    host = _normalise_host(host)
    if host is None or port is None:
        return None
    url = f"{scheme}://"
    if userinfo:
        username, colon, password = userinfo.partition(":")
        url += _percent_encode(username, _USERINFO_SET)
        url += (":" + _percent_encode(password, _USERINFO_SET) if colon and password else "") + "@"
    url += host
    if port and port != _SPECIAL_SCHEMES[scheme]:
        url += f":{port}"
    url += _percent_encode(_remove_dot_segments(path), _PATH_SET)
    if query is not None:
        url += "?" + _percent_encode(query, _SPECIAL_QUERY_SET)
    if fragment is not None:
        url += "#" + _percent_encode(fragment, _FRAGMENT_SET)
    return url


def _serialise_non_special(scheme: str, rest: str) -> str:
    """`mailto:`, `tel:`, `javascript:`…: only the scheme's case and encodings change."""
    rest, fragment = _split_off(rest, "#")
    rest, query = _split_off(rest, "?")
    url = scheme + ":" + _percent_encode(rest, _PATH_SET if rest.startswith("/") else _C0_CONTROLS)
    if query is not None:
        url += "?" + _percent_encode(query, _QUERY_SET)
    if fragment is not None:
        url += "#" + _percent_encode(fragment, _FRAGMENT_SET)
    return url


def _split_off(text: str, separator: str) -> tuple[str, str | None]:
    head, found, tail = text.partition(separator)
    return head, (tail if found else None)


def _split_host_and_port(host_and_port: str) -> tuple[str, str | None]:
    """The host, and the port ("" when absent, None when it is not a valid number)."""
    if host_and_port.startswith("["):
        host, bracket, after = host_and_port.partition("]")
        host += bracket
        if after and not after.startswith(":"):
            return host, None
        port = after[1:]
    else:
        host, _, port = host_and_port.partition(":")
    if not _PORT.fullmatch(port) or (port and int(port) > 65535):
        return host, None
    return host, str(int(port)) if port else ""


def _normalise_host(host: str) -> str | None:
    """The serialised host, or None when the standard rejects it."""
    if host.startswith("["):
        return host.lower() if _IPV6.fullmatch(host) else None
    if "%" in host:
        try:
            host = unquote_to_bytes(host).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if not host or _FORBIDDEN_HOST.search(host):
        return None
    return host.lower()


def _percent_encode(text: str, encode_set: frozenset[str]) -> str:
    if text.isascii() and not encode_set.intersection(text):
        return text
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode("utf-8", errors="replace"))
        if char in encode_set or ord(char) > 0x7E
        else char
        for char in text
    )


def _remove_dot_segments(path: str) -> str:
    """WHATWG path parsing: `.` and `..` segments (also percent-encoded) disappear."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        is_last = index == len(segments) - 1
        lowered = segment.lower()
        if lowered in (".", "%2e"):
            if is_last:
                output.append("")
        elif lowered in ("..", ".%2e", "%2e.", "%2e%2e"):
            if output:
                output.pop()
            if is_last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _as_bytes(content: str | bytes) -> bytes:
    """PDF bytes; a PDF held as text was decoded byte for byte (Latin-1) or as UTF-8."""
    if isinstance(content, bytes):
        return content
    try:
        return content.encode("latin-1")
    except UnicodeEncodeError:
        return content.encode("utf-8", errors="surrogateescape")
