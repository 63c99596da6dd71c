"""``tanfang classify FILE``: JSON lines in, one result or error object per line out.

Runs the management command through ``call_command`` with real files and standard input, and
once as a separate process to see the bytes and the exit status a shell sees. None of these
tests may touch the database (pytest-django would fail them if they did).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

ALONE = {
    "id": "A1",
    "as_of": "2024-06-01",
    "birth_date": "1940-05-01",
    "spouse": None,
    "children": [],
    "household": [],
    "rural": False,
    "capability_level": 0,
    "disability": None,
}
IMPAIRED = {**ALONE, "id": 2, "spouse": {"alive": True, "lives_with": True}, "capability_level": 1}


def jsonl(*objects: Any) -> str:
    return "".join(
        (o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)) + "\n" for o in objects
    )


def classify_file(path: Path | str, *args: str) -> tuple[list[dict[str, Any]], int]:
    """Output objects and the exit status the command would have."""
    out = io.StringIO()
    status = 0
    try:
        call_command("classify", str(path), *args, stdout=out)
    except CommandError as exc:
        status = exc.returncode
    return [json.loads(line) for line in out.getvalue().splitlines()], status


def test_classifies_each_line_in_order(tmp_path: Path) -> None:
    source = tmp_path / "elders.jsonl"
    source.write_text(jsonl(ALONE, IMPAIRED), encoding="utf-8")
    results, status = classify_file(source)
    assert status == 0
    assert [r["id"] for r in results] == ["A1", 2]
    assert results[0] == {
        "id": "A1",
        "categories": ["living_alone"],
        "reasons": {"living_alone": "无配偶、无在世子女（依据：配偶、子女）"},
        "missing_facts": [],
        "advanced_age": True,
        "focus": True,
    }
    assert results[1]["categories"] == ["impaired"]


def test_english_reasons(tmp_path: Path) -> None:
    source = tmp_path / "elders.jsonl"
    source.write_text(jsonl(ALONE), encoding="utf-8")
    results, _ = classify_file(source, "--lang", "en")
    assert results[0]["reasons"]["living_alone"] == (
        "No spouse and no living children (facts: spouse, children)"
    )


def test_reads_standard_input() -> None:
    out = io.StringIO()
    call_command("classify", "-", stdin=io.StringIO(jsonl(IMPAIRED, ALONE)), stdout=out)
    assert [json.loads(line)["id"] for line in out.getvalue().splitlines()] == [2, "A1"]


def test_malformed_lines_become_error_objects_and_the_rest_is_classified(tmp_path: Path) -> None:
    source = tmp_path / "elders.jsonl"
    lines = [
        json.dumps(ALONE),
        "",  # blank lines are skipped but counted
        "{not json",
        json.dumps({**ALONE, "id": 7, "children": [{}, {}, {"age": "old"}]}),
        "[1, 2]",
        "   ",
        json.dumps({**ALONE, "id": 8, "as_of": None}),
        json.dumps(IMPAIRED),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results, status = classify_file(source, "--lang", "en")
    assert status == 1
    assert len(results) == 6
    assert results[0]["id"] == "A1" and "categories" in results[0]
    assert results[1] == {
        "line": 3,
        "id": None,
        "error": {"field": None, "message": results[1]["error"]["message"]},
    }
    assert results[1]["error"]["message"].startswith("not valid JSON")
    assert results[2] == {
        "line": 4,
        "id": 7,
        "error": {"field": "children[2].age", "message": "must be a whole number"},
    }
    assert results[3] == {
        "line": 5,
        "id": None,
        "error": {"field": None, "message": "must be a JSON object"},
    }
    assert results[4]["error"] == {"field": "as_of", "message": "is required"}
    assert results[4]["id"] == 8
    assert results[5]["id"] == 2 and results[5]["categories"] == ["impaired"]


def test_error_messages_follow_the_language(tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(jsonl({**ALONE, "rural": "yes"}), encoding="utf-8")
    results, status = classify_file(source)
    assert status == 1
    assert results[0]["error"] == {"field": "rural", "message": "应为 true、false 或 null"}


def test_invalid_utf8_and_byte_order_mark(tmp_path: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(
        "\ufeff".encode() + jsonl(ALONE).encode() + b'{"id": "\xff"}\n' + jsonl(IMPAIRED).encode()
    )
    results, status = classify_file(source, "--lang", "en")
    assert status == 1
    assert results[0]["id"] == "A1"
    assert results[1] == {
        "line": 2,
        "id": None,
        "error": {"field": None, "message": "the line is not valid UTF-8"},
    }
    assert results[2]["id"] == 2


def test_as_of_option_fills_lines_without_a_date(tmp_path: Path) -> None:
    source = tmp_path / "elders.jsonl"
    undated = {k: v for k, v in ALONE.items() if k != "as_of"}
    source.write_text(jsonl(undated), encoding="utf-8")
    results, status = classify_file(source, "--as-of", "2020-04-30")
    assert status == 0
    assert results[0]["advanced_age"] is False  # 79 on that day
    results, _ = classify_file(source, "--as-of", "2020-05-01")
    assert results[0]["advanced_age"] is True
    with pytest.raises(CommandError) as caught:
        call_command("classify", str(source), "--as-of", "May 2020", stdout=io.StringIO())
    assert caught.value.returncode == 2


def test_district_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {
                    "code": "old_alone",
                    "label": "高龄独居",
                    "all": [
                        {"fact": "age", "op": ">=", "value": 80},
                        {"fact": "living_alone", "op": "==", "value": True},
                    ],
                }
            ],
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    source = tmp_path / "elders.jsonl"
    source.write_text(jsonl(ALONE, IMPAIRED), encoding="utf-8")
    results, status = classify_file(source, "--rules", str(rules))
    assert status == 0
    assert results[0]["categories"] == ["living_alone", "other"]
    assert results[0]["reasons"]["other"] == "符合本区规定“高龄独居”（依据：年龄、独居）"
    assert "other" not in results[1]["categories"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            '[{"code": "x", "label": "l", "all": [{"fact": "wealth", "op": "==", "value": 1}]}]',
            "rule x, all[0].fact",
        ),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_rules_file_stops_before_any_line(tmp_path: Path, content: str, needle: str) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(content, encoding="utf-8")
    source = tmp_path / "elders.jsonl"
    source.write_text(jsonl(ALONE), encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("classify", str(source), "--rules", str(rules), stdout=out)
    assert caught.value.returncode == 2
    assert needle in str(caught.value)
    assert out.getvalue() == ""


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("classify", str(tmp_path / "nope.jsonl"), stdout=io.StringIO())
    assert caught.value.returncode == 2
    assert "cannot read" in str(caught.value)


def test_empty_input_gives_empty_output(tmp_path: Path) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_text("\n\n", encoding="utf-8")
    assert classify_file(source) == ([], 0)


def test_as_a_process_output_is_utf8_and_exit_status_reports_errors(tmp_path: Path) -> None:
    source = tmp_path / "elders.jsonl"
    source.write_text(jsonl(ALONE, "oops"), encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}  # the output must not depend on it
    done = subprocess.run(
        [sys.executable, "-m", "tanfang.cli", "classify", str(source)],
        env=env,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    first, second = done.stdout.decode("utf-8").splitlines()
    assert "无配偶、无在世子女" in first  # not \u escapes
    assert json.loads(second)["line"] == 2
    assert b"1 line(s) could not be classified" in done.stderr
