"""`termshift lint`: canonical declaration files, and ruff on Python filters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from termshift.commands.lint import lint_command
from termshift.contrib.lint import canonical_json, lint_json_file

# Everything a hand-edited file gets wrong: 4 spaces, keys out of order, escaped non-ASCII,
# a range with its end first, no final newline.
MESSY_DECLARATION = (
    '{\n    "terms": {\n        "Conditions of Carriage": {\n'
    '            "select": [{"endBefore": "footer", "startAfter": "h1"}, "main"],\n'
    '            "executeClientScripts": true,\n'
    '            "filter": ["removeQueryParams"],\n'
    '            "fetch": "https://example.com/conditions-g\\u00e9n\\u00e9rales",\n'
    '            "remove": ".cookie-banner"\n        },\n'
    '        "Privacy Policy": {"combine": [{"select": "#b", "fetch": "https://example.com/b"}], "select": "main"}\n'
    '    },\n    "importedFrom": "https://tosback.example/rules.xml",\n    "name": "Société Générale"\n}'
)

CANONICAL_DECLARATION = """{
  "name": "Société Générale",
  "terms": {
    "Conditions of Carriage": {
      "fetch": "https://example.com/conditions-générales",
      "select": [
        {
          "startAfter": "h1",
          "endBefore": "footer"
        },
        "main"
      ],
      "remove": ".cookie-banner",
      "filter": [
        "removeQueryParams"
      ],
      "executeClientScripts": true
    },
    "Privacy Policy": {
      "select": "main",
      "combine": [
        {
          "fetch": "https://example.com/b",
          "select": "#b"
        }
      ]
    }
  },
  "importedFrom": "https://tosback.example/rules.xml"
}
"""

MESSY_HISTORY = json.dumps({
    "Terms of Service": [
        {"validUntil": "2024-05-01T00:00:00Z", "select": "#new", "fetch": "https://example.com/tos"},
        {"validUntil": "2023-01-01T10:00:00+01:00", "select": "#old", "fetch": "https://example.com/tos"},
    ]
})


def test_canonical_declaration_orders_keys_and_keeps_non_ascii():
    assert canonical_json(MESSY_DECLARATION, "declaration") == CANONICAL_DECLARATION


def test_canonical_history_sorts_entries_and_puts_valid_until_last():
    data = json.loads(canonical_json(MESSY_HISTORY, "history"))
    entries = data["Terms of Service"]
    assert [entry["select"] for entry in entries] == ["#old", "#new"]
    assert [list(entry) for entry in entries] == [["fetch", "select", "validUntil"]] * 2


def test_canonical_form_is_a_fixed_point():
    once = canonical_json(MESSY_DECLARATION, "declaration")
    assert canonical_json(once, "declaration") == once


@pytest.fixture
def messy_collection(tmp_path: Path) -> Path:
    (tmp_path / "Société Générale.json").write_text(MESSY_DECLARATION, encoding="utf-8")
    (tmp_path / "Société Générale.history.json").write_text(MESSY_HISTORY, encoding="utf-8")
    (tmp_path / "Tidy.json").write_text(json.dumps(
        {"name": "Tidy", "terms": {"Imprint": {"fetch": "https://t.example/imprint", "select": "main"}}},
        indent=2) + "\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("not a declaration")
    return tmp_path


def run_lint(directory: Path, *arguments: str):
    return CliRunner().invoke(lint_command, ["--declarations", str(directory), *arguments])


def test_lint_reports_each_file_with_a_diff_then_fix_round_trips(messy_collection: Path):
    before = {path.name: json.loads(path.read_text(encoding="utf-8"))
              for path in messy_collection.glob("*.json")}
    result = run_lint(messy_collection)
    assert result.exit_code == 1
    assert "Société Générale.json: not in canonical form (`termshift lint --fix` rewrites it):" in result.output
    assert "Société Générale.history.json: not in canonical form" in result.output
    assert "Tidy.json" not in result.output
    assert '    +  "name": "Société Générale",' in result.output  # the diff shows the change
    assert result.output.strip().endswith("3 files checked: 2 with problems")

    fixed = run_lint(messy_collection, "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert "Société Générale.json: rewritten in canonical form" in fixed.output
    assert (messy_collection / "Société Générale.json").read_text(encoding="utf-8") == CANONICAL_DECLARATION
    after = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in messy_collection.glob("*.json")}
    # Same data (history order aside, which carries no meaning), canonical text.
    assert after["Société Générale.json"] == before["Société Générale.json"]
    def entries(data: dict) -> list[str]:
        return sorted(json.dumps(entry, sort_keys=True) for entry in data["Société Générale.history.json"]["Terms of Service"])

    assert entries(after) == entries(before)

    again = run_lint(messy_collection)
    assert again.exit_code == 0 and again.output.strip() == "3 files checked: all canonical"


def test_line_ends_alone_are_reported(tmp_path: Path):
    (tmp_path / "A.json").write_bytes(b'{\r\n  "name": "A",\r\n  "terms": {}\r\n}\r\n')
    result = run_lint(tmp_path)
    assert result.exit_code == 1 and "only the line ends differ" in result.output


@pytest.mark.parametrize(("text", "message"), [
    ('{"name": "A",\n "terms": {}', "malformed JSON: Expecting ',' delimiter at line 2, column 13"),
    ('{"name": "A", "name": "B", "terms": {}}', "the key 'name' appears twice in the same object"),
])
def test_files_lint_cannot_fix_are_errors_and_left_alone(tmp_path: Path, text: str, message: str):
    path = tmp_path / "A.json"
    path.write_text(text)
    assert lint_json_file(path).problem.startswith(message)
    result = run_lint(tmp_path, "--fix")
    assert result.exit_code == 1 and message in result.output
    assert path.read_text() == text


def test_only_the_requested_services(messy_collection: Path):
    result = run_lint(messy_collection, "--services", "Tidy")
    assert result.exit_code == 0 and "1 file checked" in result.output


def test_the_shipped_collections_are_canonical(repo_declarations: Path):
    result = run_lint(repo_declarations)
    assert result.exit_code == 0, result.output


def test_the_ota_demo_collection_is_canonical(corpus_dir: Path):
    # OTA's own lint (ESLint json-format) and ours agree on its demo collection.
    result = run_lint(corpus_dir / "declarations")
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_python_filters_go_through_ruff(tmp_path: Path):
    (tmp_path / "A.json").write_text(json.dumps({"name": "A", "terms": {}}, indent=2) + "\n")
    filters = tmp_path / "A.filters.py"
    filters.write_text("import os\ndef clean(document,context):\n    return None\n")
    result = run_lint(tmp_path)
    assert result.exit_code == 1
    assert "A.filters.py:1:8: F401" in result.output  # the unused import
    assert "not formatted as `ruff format` would" in result.output

    fixed = run_lint(tmp_path, "--fix")
    assert fixed.exit_code == 0, fixed.output
    text = filters.read_text()
    assert "import os" not in text and "def clean(document, context):" in text


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_filters_are_checked_from_the_collection_root_and_counted_once(tmp_path: Path, monkeypatch):
    # The usual way to run it: from the collection root, the default `declarations/` folder.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TERMSHIFT_CONFIG", raising=False)
    monkeypatch.delenv("TERMSHIFT_DECLARATIONS", raising=False)
    folder = tmp_path / "declarations"
    folder.mkdir()
    (folder / "A.json").write_text(json.dumps({"name": "A", "terms": {}}, indent=2) + "\n")
    # Two findings of `ruff check` and a formatting problem, all in one file.
    (folder / "A.filters.py").write_text("import os\nimport sys\ndef clean(document,context):\n    return None\n")
    (folder / "B.filters.py").write_text("def clean(document, context):\n    return None\n")
    result = CliRunner().invoke(lint_command, [])
    assert result.exit_code == 1
    assert "E902" not in result.output and "ruff format failed" not in result.output
    assert "declarations/A.filters.py:1:8: F401 `os` imported but unused" in result.output
    assert "declarations/A.filters.py:2:8: F401 `sys` imported but unused" in result.output
    assert "not formatted as `ruff format` would" in result.output
    assert "B.filters.py" not in result.output
    assert result.output.strip().splitlines()[-1] == "3 files checked: 1 with problems"

    fixed = CliRunner().invoke(lint_command, ["--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert fixed.output.strip().splitlines()[-1] == "3 files checked: all canonical"
    assert (folder / "A.filters.py").read_text() == "def clean(document, context):\n    return None\n"


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_a_filters_file_ruff_cannot_parse_is_one_problem_with_its_reason(tmp_path: Path):
    (tmp_path / "A.filters.py").write_text("def clean(:\n")
    result = run_lint(tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path / 'A.filters.py'}:1:" in result.output  # where the syntax error is
    assert "ruff format failed" not in result.output  # the formatter's refusal says nothing more
    assert result.output.strip().splitlines()[-1] == "1 file checked: 1 with problems"
