"""Every user-facing string in templates and Python (_() / N_()) has a Korean translation."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
METHOD_MAP = [("backend/**.py", "python"), ("pwa/templates/**.html", "jinja2")]
OPTIONS = {"pwa/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def korean_catalog() -> dict[str, str]:
    merged = {}
    for po in sorted((ROOT / "backend/locale/ko/LC_MESSAGES").glob("*.po")):
        with po.open("rb") as fh:
            for message in read_po(fh, locale="ko"):
                if message.id:
                    key = message.id if isinstance(message.id, str) else message.id[0]
                    value = message.string if isinstance(message.string, str) else message.string[0]
                    if value:
                        merged[key] = value
    return merged


def test_every_ui_string_has_a_korean_translation():
    catalog = korean_catalog()
    missing = []
    for filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), METHOD_MAP, OPTIONS, KEYWORDS
    ):
        msgid = message if isinstance(message, str) else message[0]
        if msgid and msgid not in catalog:
            missing.append(f"{filename}: {msgid[:80]}")
    assert missing == [], "untranslated:\n" + "\n".join(sorted(set(missing)))


def test_translations_keep_their_placeholders():
    import re

    for msgid, msgstr in korean_catalog().items():
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", msgstr)), msgid


def test_no_translated_text_hides_in_an_f_string():
    """Babel's extractor does not look inside f-strings: _("Name") there went untranslated in
    the doctor PDF. Use a %-template with variables instead."""
    import re

    hidden = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""\bf(["']).*\{_\(""", line):
                hidden.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert hidden == []
