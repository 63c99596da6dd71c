"""``tanfang classify FILE``: classify elders from a JSON-lines file, without the database.

Reads one facts object per line (FILE, or ``-`` for standard input) and writes one result per
line, in the same order, as UTF-8 JSON. A line that cannot be read becomes an error object
``{"line": N, "id": ..., "error": {"field": ..., "message": ...}}`` and the rest are still
classified. Exit status: 0 when every line was classified, 1 when any line had an error,
2 when the rules file, the input file or an option is unusable. docs/classification.md has the
formats.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tanfang.registry.classification import (
    FactsError,
    OtherRule,
    RuleError,
    classify,
    compile_other_rules,
    parse_facts,
)
from tanfang.registry.classification_text import LANGUAGES

# Errors about the line as a whole (its field is null): key -> (English, Chinese).
_LINE_ERRORS: dict[str, tuple[str, str]] = {
    "utf8": ("the line is not valid UTF-8", "该行不是有效的 UTF-8 文本"),
    "json": ("not valid JSON: {detail}", "不是有效的 JSON：{detail}"),
}


class Command(BaseCommand):
    help = (
        "Classify elders from a JSON-lines file (or - for standard input) into the categories "
        "of 京民养老发〔2024〕1号 二.(二); one result per line. The database is not used."
    )
    requires_system_checks: list[str] = []
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="JSON-lines input; - reads standard input")
        parser.add_argument(
            "--rules", metavar="RULES.json", help="a JSON list of the district's 'other' rules"
        )
        parser.add_argument(
            "--lang", choices=LANGUAGES, default="zh-hans", help="language of the reasons"
        )
        parser.add_argument(
            "--as-of",
            dest="as_of",
            metavar="YYYY-MM-DD",
            help="the date for lines that have no as_of (otherwise as_of is required)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lang: str = options["lang"]
        rules = _load_rules(options["rules"]) if options["rules"] else ()
        default_as_of = _parse_as_of(options["as_of"]) if options["as_of"] else None
        stream = options.get("stdout") or sys.stdout
        write = _utf8_writer(stream)
        name: str = options["file"]
        if name == "-":
            stdin = options.get("stdin") or sys.stdin
            errors = _classify_lines(
                getattr(stdin, "buffer", stdin), write, rules, lang, default_as_of
            )
        else:
            try:
                source = open(name, "rb")  # noqa: SIM115 - closed below; streamed line by line
            except OSError as exc:
                raise CommandError(f"cannot read {name}: {exc.strerror}", returncode=2) from exc
            with source:
                errors = _classify_lines(source, write, rules, lang, default_as_of)
        getattr(stream, "buffer", stream).flush()
        if errors:
            raise CommandError(
                f"{errors} line(s) could not be classified; see the error objects in the output",
                returncode=1,
            )


def _load_rules(path: str) -> tuple[OtherRule, ...]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=2) from exc
    except ValueError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}", returncode=2) from exc
    try:
        return compile_other_rules(raw)
    except RuleError as exc:
        raise CommandError(f"{path}: {exc}", returncode=2) from exc


def _parse_as_of(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of {value!r} is not a date YYYY-MM-DD", returncode=2) from None


def _utf8_writer(stream: IO[str]) -> Callable[[str], object]:
    """Write text as UTF-8 whatever the locale: through the byte buffer when there is one."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return stream.write
    stream.flush()
    return lambda text: buffer.write(text.encode("utf-8"))


def _lines(source: Iterable[bytes | str]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each non-blank line; text is None when it is not UTF-8."""
    for number, raw in enumerate(source, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None
                continue
        else:
            text = raw
        if number == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield number, text


def _classify_lines(
    source: Iterable[bytes | str],
    write: Callable[[str], object],
    rules: tuple[OtherRule, ...],
    lang: str,
    default_as_of: dt.date | None,
) -> int:
    """Classify each line and write its result; return how many lines had errors."""
    zh = lang == "zh-hans"
    errors = 0
    for number, text in _lines(source):
        obj: Any = None
        try:
            if text is None:
                raise _line_error("utf8")
            try:
                obj = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise _line_error("json", detail=str(exc)) from None
            facts = parse_facts(obj, default_as_of=default_as_of)
        except FactsError as exc:
            errors += 1
            ident = obj.get("id") if isinstance(obj, dict) else None
            result: dict[str, Any] = {
                "line": number,
                "id": ident if isinstance(ident, str | int) else None,
                "error": {
                    "field": exc.field or None,
                    "message": exc.message_zh if zh else exc.message,
                },
            }
        else:
            result = classify(facts, rules).as_json(lang)
        write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
    return errors


def _line_error(key: str, **params: str) -> FactsError:
    english, chinese = _LINE_ERRORS[key]
    return FactsError("", english.format(**params), chinese.format(**params))
