"""Block and challenge page detection: each vendor's page is named, real pages never are."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from termshift.trackers.blocking import SIGNATURES, detect_block, visible_text_length
from tests.support.servers import CLOUDFLARE_CHALLENGE_PAGE, html_page, minimal_pdf

TERMS = " ".join(
    f"Section {number}. You agree to use the service lawfully and to respect the rights of others."
    for number in range(1, 40)
)

# -- pages served by anti-bot systems (markers as their real pages carry them) -----------------

CLOUDFLARE_BLOCK = """<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>
<body><div id="cf-wrapper"><div id="cf-error-details" class="cf-error-details-wrapper">
<h1>Sorry, you have been blocked</h1><h2>You are unable to access example.com</h2>
<p>Cloudflare Ray ID: <strong>8a1b2c3d4e5f</strong></p></div></div></body></html>"""

AKAMAI = """<HTML><HEAD>
<TITLE>Access Denied</TITLE>
</HEAD><BODY>
<H1>Access Denied</H1>
You don't have permission to access "http&#58;&#47;&#47;www&#46;example&#46;com&#47;terms" on this server.<P>
Reference&#32;&#35;18&#46;2f3c1402&#46;1700000000&#46;1a2b3c4d
<P>https&#58;&#47;&#47;errors&#46;edgesuite&#46;net&#47;18&#46;2f3c1402</P>
</BODY>
</HTML>"""

AWS_WAF_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title></title>
<script>window.awsWafCookieDomainList = [];window.gokuProps = {"key":"AQID","iv":"A6we","context":"x"};</script>
<script src="https://abc.token.awswaf.com/abc/challenge.js"></script></head>
<body><div id="challenge-container"></div><script>AwsWafIntegration.saveReferrer();
AwsWafIntegration.checkForceRefresh().then(() => location.reload());</script>
<noscript><h1>JavaScript is disabled</h1></noscript></body></html>"""

IMPERVA_INCIDENT = """<html><head><META NAME="robots" CONTENT="noindex,nofollow"></head>
<body>Request unsuccessful. Incapsula incident ID: 1234000560078901234-123456789012345678</body></html>"""

IMPERVA_IFRAME = """<html style="height:100%"><head><META NAME="ROBOTS" CONTENT="NOINDEX, NOFOLLOW">
<script src="/_Incapsula_Resource?SWJIYLWA=719d34d31c8e3a6e6fffd425f7e032f3"></script></head>
<body style="margin:0px;height:100%"><iframe id="main-iframe" src="/_Incapsula_Resource?CWUDNSAI=23&xinfo=5-1"
frameborder=0 width="100%" height="100%">Request unsuccessful.</iframe></body></html>"""

DATADOME = """<html><head><title>example.com</title><style>#cmsg{animation: A 1.5s;}</style></head>
<body style="margin:0"><p id="cmsg">Please enable JS and disable any ad blocker</p>
<script>var dd={'rt':'c','cid':'AHrlqAAAAAMA','hsh':'E6EAA1','t':'fe','s':1234,'e':'ab','host':'geo.captcha-delivery.com'}</script>
<script src="https://ct.captcha-delivery.com/c.js"></script></body></html>"""

PERIMETERX = """<!DOCTYPE html><html lang="en"><head><title>Access to this page has been denied</title></head>
<body><div class="px-captcha-container"><h1>Before we continue...</h1>
<p>Press &amp; Hold to confirm you are a human (and not a bot).</p><div id="px-captcha"></div></div>
<script>window._pxAppId = 'PXabc123';</script><script src="/abc123/captcha/captcha.js?a=c"></script></body></html>"""

RECAPTCHA_ONLY = """<!DOCTYPE html><html><head><title>Verification</title>
<script src="https://www.google.com/recaptcha/api.js" async defer></script></head>
<body><form method="post"><p>Please verify that you are human.</p>
<div class="g-recaptcha" data-sitekey="6Lc_aCMTAAAAABx7u2W0WPXnVbI_v6ZdbM6rYf16"></div>
<button type="submit">Continue</button></form></body></html>"""

HCAPTCHA_ONLY = """<html><head><script src="https://js.hcaptcha.com/1/api.js" async defer></script></head>
<body><div class="h-captcha" data-sitekey="10000000-ffff-ffff-ffff-000000000001"></div></body></html>"""

EMPTY_SHELL = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Example</title>
<link rel="stylesheet" href="/static/app.css"><script defer src="/static/js/main.8f3c1.js"></script></head>
<body><noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div></body></html>"""


@pytest.mark.parametrize(
    ("status", "headers", "content", "expected"),
    [
        (403, {"Server": "cloudflare"}, CLOUDFLARE_CHALLENGE_PAGE, "cloudflare-challenge"),
        (200, {}, CLOUDFLARE_CHALLENGE_PAGE, "cloudflare-challenge"),  # a challenge served as 200
        (403, {"CF-Mitigated": "challenge"}, "", "cloudflare-challenge"),  # the header alone
        (403, {}, CLOUDFLARE_BLOCK, "cloudflare-block"),
        (403, {"Server": "AkamaiGHost"}, AKAMAI, "akamai-access-denied"),
        (405, {"x-amzn-waf-action": "captcha"}, "<html><body></body></html>", "aws-waf"),
        (202, {}, AWS_WAF_PAGE, "aws-waf"),
        (200, {}, IMPERVA_INCIDENT, "imperva-incapsula"),
        (200, {}, IMPERVA_IFRAME, "imperva-incapsula"),
        (403, {"X-DataDome": "protected"}, DATADOME, "datadome"),
        (200, {}, DATADOME, "datadome"),
        (403, {}, PERIMETERX, "perimeterx"),
        (200, {}, RECAPTCHA_ONLY, "captcha-only"),
        (429, {}, HCAPTCHA_ONLY, "captcha-only"),
        (200, {}, EMPTY_SHELL, "empty-shell"),
        (200, {}, EMPTY_SHELL.encode("utf-8"), "empty-shell"),  # undecoded bytes too
        (200, {}, "\ufeff" + CLOUDFLARE_CHALLENGE_PAGE, "cloudflare-challenge"),  # after a BOM
    ],
)
def test_block_pages_are_named(status: int, headers: dict, content: str | bytes, expected: str) -> None:
    assert detect_block(status, headers, content) == expected


def test_every_signature_is_exercised() -> None:
    """Each rule in SIGNATURES has a positive case above (a rule never seen to fire is untested)."""
    source = Path(__file__).read_text(encoding="utf-8")
    assert all(f'"{name}")' in source for name in SIGNATURES)


@pytest.mark.parametrize(
    ("status", "headers", "content"),
    [
        # A terms page that talks about captchas, and one with a reCAPTCHA in a contact form.
        (200, {}, html_page("Terms", "We may ask you to solve a CAPTCHA (reCAPTCHA or hCaptcha). " + TERMS)),
        (200, {}, html_page("Contact", TERMS, head='<script src="https://www.google.com/recaptcha/api.js"></script>')
         .replace("</main>", '<form><div class="g-recaptcha" data-sitekey="x"></div></form></main>')),
        # Normal pages behind Cloudflare carry its bot-management beacon and Ray headers.
        (200, {"Server": "cloudflare", "CF-RAY": "8a1b-CDG"},
         html_page("Terms", TERMS, head='<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script>')),
        # Imperva injects its script into ordinary pages; DataDome marks every answer.
        (200, {}, html_page("Terms", TERMS, head='<script src="/_Incapsula_Resource?SWJIYLWA=719d"></script>')),
        (200, {"X-DataDome": "protected"}, html_page("Terms", TERMS)),
        # A page titled "Just a moment" is no challenge without Cloudflare's marks.
        (200, {}, html_page("Just a moment with our terms", TERMS)),
        # A short page that is a redirect, as some of the corpus's snapshots are.
        (200, {}, '<html><head><title>You should be redirected quickly</title><meta http-equiv="refresh" '
                  'content="0; url=/en/"><script>location.replace("/en/")</script></head>'
                  '<body><p>You should be redirected quickly.</p></body></html>'),
        # An error page made of scripts keeps its HTTP error: no "empty-shell" for a 404.
        (404, {}, EMPTY_SHELL),
        # A short page without scripts is short, not a shell.
        (200, {}, "<html><body><p>Page moved.</p></body></html>"),
        # Not HTML at all.
        (200, {"Content-Type": "application/pdf"}, minimal_pdf("captcha-delivery.com g-recaptcha")),
        (200, {"Content-Type": "text/plain"}, "Access Denied. You don't have permission to access. Reference #1"),
        (200, {}, ""),
        (200, None, None),
    ],
)
def test_real_pages_are_not_flagged(status: int, headers: dict | None, content: str | bytes | None) -> None:
    assert detect_block(status, headers, content) is None


def test_visible_text_skips_scripts_styles_and_markup() -> None:
    page = (
        "<html><head><title>Hidden title</title><style>p { color: red }</style></head><body>"
        "<script>var text = 'not visible';</script><!-- a comment --><p>Hello&nbsp;world</p>"
        "<noscript>Enable JavaScript</noscript><svg><text>drawn</text></svg></body></html>"
    )
    assert visible_text_length(page) == len("Hello world")
    many = "<p>word</p>" * 1000
    assert visible_text_length(many) == 4000
    assert visible_text_length(many, limit=50) == 52  # stops at the first text piece past the limit


def test_detection_is_fast_on_a_large_real_sized_page() -> None:
    page = html_page("Terms", TERMS * 60, head="<script>" + "var x = 1;" * 20_000 + "</script>")
    start = time.perf_counter()
    for _ in range(20):
        assert detect_block(200, {}, page) is None
    assert (time.perf_counter() - start) / 20 < 0.02  # well under the time to download the page


# -- the real snapshots of the demo corpus: none is a block page ----------------------------------


@pytest.fixture(scope="module")
def corpus_snapshots(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare clone of the corpus's snapshots repository."""
    destination = tmp_path_factory.mktemp("corpus") / "snapshots.git"
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", "--branch", "subset", str(corpus_dir / "snapshots.bundle"),
         str(destination)],
        check=True,
    )
    return destination


def _snapshot_paths(repository: Path) -> list[tuple[str, str]]:
    """(commit, path) of every snapshot, newest first."""
    log = subprocess.run(
        ["git", "-C", str(repository), "log", "--format=%H", "--name-only", "subset"],
        check=True, capture_output=True, text=True,
    ).stdout
    snapshots, commit = [], ""
    for line in log.splitlines():
        if re.fullmatch(r"[0-9a-f]{40}", line):
            commit = line
        elif line.strip():
            snapshots.append((commit, line))
    return snapshots


@pytest.mark.corpus
def test_no_real_corpus_snapshot_is_flagged(corpus_snapshots: Path) -> None:
    """About 200 snapshots spread over every document and date of the corpus (all 3,663 are
    checked by bench/track_fetch.py --corpus)."""
    snapshots = _snapshot_paths(corpus_snapshots)
    assert len(snapshots) > 3_000
    sample = snapshots[:: max(1, len(snapshots) // 200)]
    assert len({path for _, path in sample}) >= 15  # every document is represented
    reader = subprocess.Popen(
        ["git", "-C", str(corpus_snapshots), "cat-file", "--batch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    flagged = []
    try:
        for commit, path in sample:
            reader.stdin.write(f"{commit}:{path}\n".encode())
            reader.stdin.flush()
            size = int(reader.stdout.readline().split()[2])
            content = reader.stdout.read(size).decode("utf-8", "replace")
            reader.stdout.read(1)
            signature = detect_block(200, {"Content-Type": "text/html; charset=utf-8"}, content)
            if signature is not None:
                flagged.append((path, commit, signature))
    finally:
        reader.stdin.close()
        reader.wait()
    assert flagged == []
