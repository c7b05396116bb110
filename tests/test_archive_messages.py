"""OTA's commit conventions: subjects, bodies, trailers and file paths (pure functions)."""

from __future__ import annotations

import pytest

from termshift.archive_repo import messages
from termshift.archive_repo.media_types import extension_for, is_text, mime_type_for
from termshift.archive_repo.messages import RecordKind

SHA_A = "14bc187b" + "0" * 32
SHA_B = "fc2bf03c" + "1" * 32


# --- subjects -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (RecordKind.FIRST_RECORD, "First record of GitHub Privacy Policy"),
        (RecordKind.CHANGE, "Record new changes of GitHub Privacy Policy"),
        (RecordKind.TECHNICAL_UPGRADE, "Apply technical or declaration upgrade on GitHub Privacy Policy"),
    ],
)
def test_subject_prefixes(kind, expected):
    assert messages.format_subject(kind, "GitHub", "Privacy Policy") == expected
    assert messages.parse_subject(expected) is kind


def test_first_record_wins_over_technical_upgrade():
    assert messages.kind_of(is_first_record=True, is_technical_upgrade=True) is RecordKind.FIRST_RECORD
    assert messages.kind_of(is_first_record=False, is_technical_upgrade=True) is RecordKind.TECHNICAL_UPGRADE
    assert messages.kind_of(is_first_record=False, is_technical_upgrade=False) is RecordKind.CHANGE


@pytest.mark.parametrize(
    ("subject", "kind"),
    [
        ("Start tracking Facebook Terms of Service", RecordKind.FIRST_RECORD),
        ("Update Facebook Terms of Service", RecordKind.CHANGE),
        ("Refilter Facebook Terms of Service", RecordKind.TECHNICAL_UPGRADE),
        ("Updated README", None),
        ("Add license", None),
        ("First record", None),
        ("", None),
    ],
)
def test_legacy_prefixes_and_other_commits(subject, kind):
    assert messages.parse_subject(subject) is kind


# --- bodies ---------------------------------------------------------------------------------

def test_version_body_with_one_snapshot_substitutes_the_template():
    body = messages.format_version_body([SHA_A], "https://github.com/OTA/demo-snapshots/commit/%SNAPSHOT_ID")
    assert body == (
        "This version was recorded after extracting from snapshot "
        f"https://github.com/OTA/demo-snapshots/commit/{SHA_A}"
    )


def test_version_body_with_two_snapshots_lists_both():
    body = messages.format_version_body([SHA_A, SHA_B])
    assert body.splitlines() == [
        "This version was recorded after extracting from and assembling the following snapshots "
        "from 2 source documents:",
        f"- ./data/snapshots/{SHA_A}",
        f"- ./data/snapshots/{SHA_B}",
    ]
    assert messages.snapshot_ids_in(body) == [SHA_A, SHA_B]


def test_version_body_without_snapshots_is_empty():
    assert messages.format_version_body([]) == ""


def test_snapshot_ids_are_lower_case_hex_words_of_5_to_40_characters():
    body = "from abcd (too short), ABCDEF (upper), 0123456789abcdef, " + "a" * 41 + " and x1234f"
    assert messages.snapshot_ids_in(body) == ["0123456789abcdef"]


def test_snapshot_body_names_the_document_of_combined_terms():
    assert messages.format_snapshot_body("tos") == "Document ID tos"
    assert messages.format_snapshot_body(None) == ""
    assert messages.format_snapshot_body("") == ""


def test_message_paragraphs_as_git_cleanup_leaves_them():
    message = messages.format_message("Record new changes of A B", "", "X-fetcher: htmlOnly")
    assert message == "Record new changes of A B\n\nX-fetcher: htmlOnly\n"
    assert messages.split_message(message) == ("Record new changes of A B", "X-fetcher: htmlOnly")


# --- trailers -------------------------------------------------------------------------------

def test_trailers_round_trip():
    metadata = {"fetcher": "htmlOnly", "engine-version": "0.1.0"}
    formatted = messages.format_trailers(metadata)
    assert formatted == "Fetcher: htmlOnly\nEngine-version: 0.1.0"
    assert messages.parse_trailers(f"Subject\n\n{formatted}") == metadata


def test_trailer_keys_are_written_first_letter_upper_rest_lower():
    formatted = messages.format_trailers({"X-SOURCE-Document-Location": "https://a.example/tos"})
    assert formatted == "X-source-document-location: https://a.example/tos"


def test_empty_trailer_values_are_skipped():
    assert messages.format_trailers({"a": "", "b": "1"}) == "B: 1"
    assert messages.format_trailers({}) == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [("two words", "x"), ("trailing-", "x"), ("x", "two\nlines")],
)
def test_unparseable_trailers_are_refused(key, value):
    with pytest.raises(ValueError, match=repr(key)):
        messages.format_trailers({key: value})


def test_trailers_come_from_the_last_paragraph_only():
    message = "Subject\n\nNot-a-trailer: body text\n\nX-fetcher: fullDom"
    assert messages.parse_trailers(message) == {"x-fetcher": "fullDom"}


def test_last_paragraph_without_colon_has_no_trailers():
    assert messages.parse_trailers("Subject\n\nKey: value\n\nplain closing words") == {}


def test_trailer_values_may_contain_colons():
    message = "Subject\n\nX-source-document-location: https://example.com:8080/a?b=c:d"
    assert messages.parse_trailers(message) == {"x-source-document-location": "https://example.com:8080/a?b=c:d"}


def test_trailer_lines_with_invalid_keys_or_empty_values_are_ignored():
    message = "\n".join([
        "Subject", "",
        "Good-key: 1",
        "Bad key: 2",
        "Trailing-: 3",
        "-Leading: 4",
        "Empty:",
        "Empty-spaces:   ",
        "no colon here",
        "Under_score: 5",
        "  Indented-key: 6  ",
    ])
    assert messages.parse_trailers(message) == {"good-key": "1", "indented-key": "6"}


def test_trailers_of_a_message_ending_in_blank_lines():
    # OTA's bundle holds messages ending in "\n\n"; OTA's git client trims them.
    message = "Record new changes of A B\n\nX-engine-version: 15.1.0\nX-fetcher: htmlOnly\n\n"
    assert messages.parse_trailers(message) == {"x-engine-version": "15.1.0", "x-fetcher": "htmlOnly"}


# --- file paths -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("parts", "path"),
    [
        (("GitHub", "Privacy Policy", None, "html"), "GitHub/Privacy Policy.html"),
        (("Telegram", "Terms of Service", "tos", "html"), "Telegram/Terms of Service #tos.html"),
        (("Telegram", "Terms of Service", None, "md"), "Telegram/Terms of Service.md"),
        (("service·A", "Terms of Service", None, "pdf"), "service·A/Terms of Service.pdf"),
        (("Service B!", "Privacy Policy", "legal-privacy_x", "html"), "Service B!/Privacy Policy #legal-privacy_x.html"),
    ],
)
def test_record_paths_round_trip(parts, path):
    assert messages.record_path(*parts) == path
    assert messages.parse_record_path(path) == parts


def test_empty_document_id_is_no_document_id():
    assert messages.record_path("A", "Terms of Service", "", "html") == "A/Terms of Service.html"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (("", "Terms", None, "html"), "service id: must not be empty"),
        (("a/b", "Terms", None, "html"), "service id 'a/b': must not contain '/'"),
        ((".git", "Terms", None, "html"), "must not start with '.'"),
        (("A", "Terms #x", None, "html"), "terms type 'Terms #x': must not contain ' #'"),
        (("A", "Terms", "a/b", "html"), "document id 'a/b'"),
        (("A", "Terms\nmore", None, "html"), "line breaks"),
        (("A", "Terms", None, "ht.ml"), "extension"),
    ],
)
def test_unusable_ids_are_refused_naming_the_field(parts, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        messages.record_path(*parts)


@pytest.mark.parametrize(
    "path",
    ["README.md", "LICENSE", ".github/dependabot.yml", ".github/workflows/ci.yml", "A/B/c.html", "A/noext", "A/.html"],
)
def test_other_files_are_not_records(path):
    assert messages.parse_record_path(path) is None


# --- MIME types -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mime_type", "extension"),
    [
        ("text/html", "html"),
        ("text/html; charset=utf-8", "html"),
        ("application/pdf", "pdf"),
        ("text/plain", "txt"),
        ("application/xhtml+xml", "xhtml"),
        ("text/markdown", "md"),
    ],
)
def test_extensions_of_mime_types(mime_type, extension):
    assert extension_for(mime_type) == extension
    assert mime_type_for(extension) == mime_type.split(";")[0]


def test_unknown_mime_type_is_refused_and_unknown_extension_is_binary():
    with pytest.raises(ValueError, match="application/x-termshift-unknown"):
        extension_for("application/x-termshift-unknown")
    assert mime_type_for("zzz") == "application/octet-stream"
    assert is_text("text/html") and is_text("application/xhtml+xml")
    assert not is_text("application/pdf") and not is_text("application/octet-stream")
