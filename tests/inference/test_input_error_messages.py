"""Every refusal of the photo lanes, the ECG analysis and the ECG file readers reads in Korean
too: the English text stays the error's `message` (CLI, API default), `localized(gettext)` gives
the user's language."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from backend.i18n import translations_for
from backend.inference import ear, images
from backend.inference.errors import UnusableInputError

INFERENCE = Path(images.__file__).parent
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """Module-level string constants, also those built with + from others (MSG_LAYOUT)."""
    strings: dict[str, str] = {}

    def value(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return strings.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = value(node.left), value(node.right)
            return left + right if left is not None and right is not None else None
        return None

    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            text = value(node.value)
            if text is not None:
                strings[node.targets[0].id] = text
    return strings


def _refusal_texts(module: Path) -> set[str]:
    """English texts a person can be shown from `module`: the first argument of every
    UnusableInputError(...) / not_an_eardrum(...) (a literal or a module constant), every
    Phrase("...") given as a parameter, the reasons screen_crop returns, the issues
    quality_issues returns, and RETRY_HINT."""
    tree = ast.parse(module.read_text())
    strings = _module_strings(tree)
    texts = set()
    for node in ast.walk(tree):
        refusal = getattr(getattr(node, "func", None), "id", "")
        first = node.args[0] if refusal and node.args else None
        if refusal == "Phrase" and isinstance(first, ast.Constant):
            texts.add(first.value)
        if refusal in ("UnusableInputError", "not_an_eardrum"):
            if isinstance(first, ast.Constant):
                texts.add(first.value)
            elif isinstance(first, ast.Name) and first.id in strings:
                texts.add(strings[first.id])
        if isinstance(node, ast.FunctionDef) and node.name in ("screen_crop", "quality_issues"):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, (ast.Tuple, ast.List)):
                    item = ret.value.elts[0] if ret.value.elts else None
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        texts.add(item.value)
    if "RETRY_HINT" in strings:
        texts.add(strings["RETRY_HINT"])
    return texts


# Every module that refuses input, so that a new one cannot be left out of the scan.
REFUSING_MODULES = sorted(
    str(path.relative_to(INFERENCE))
    for path in INFERENCE.rglob("*.py")
    if path.name != "errors.py" and "UnusableInputError(" in path.read_text()
)
# How many Phrase("...") parameters the scan must find in a module (it reads literals only).
PHRASES = {
    "ecg/digitize.py": {f"{side} edge" for side in ("left", "right", "top", "bottom")},
    "dispatch.py": {"photo"},
    "ecg/readers/__init__.py": {"XML file"},
    "ecg/readers/csv_format.py": {"CSV file"},
    "ecg/readers/dicom_format.py": {"DICOM file", "unknown"},
    "ecg/readers/edf_format.py": {"EDF file"},
    "ecg/readers/hdf5_format.py": {"HDF5 file", "none"},
    "ecg/readers/numpy_format.py": {".npy file", ".npz file", "none"},
    "ecg/readers/pickle_format.py": {"pickle file"},
}

# Refusals that are not a literal: skin.py raises its quality_issues text (scanned above);
# dispatch.py's unknown kind and missing path are the developer CLI's own errors.
UNREAD_ALLOWED = {"skin.py": 1, "dispatch.py": 2}


def _unread_refusals(module: Path) -> list[str]:
    """UnusableInputError(...) calls whose text is not a literal or a module constant (an
    f-string, a concatenation, a variable): the scan cannot check those for Korean text."""
    tree = ast.parse(module.read_text())
    strings = _module_strings(tree)
    unread = []
    for node in ast.walk(tree):
        if getattr(getattr(node, "func", None), "id", "") != "UnusableInputError":
            continue
        first = node.args[0] if node.args else None
        literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        if not literal and not (isinstance(first, ast.Name) and first.id in strings):
            unread.append(f"{module.name}:{node.lineno}")
    return unread


@pytest.mark.parametrize(
    "module",
    REFUSING_MODULES,
)
def test_every_refusal_has_korean_text(module):
    texts = _refusal_texts(INFERENCE / module)
    assert texts, "the scan found none of the module's refusals"
    unread = _unread_refusals(INFERENCE / module)
    assert len(unread) == UNREAD_ALLOWED.get(module, 0), (
        f"refusals the scan cannot check (use a %-template and params): {unread}"
    )
    assert PHRASES.get(module, set()) <= texts, "a Phrase the scan did not find"
    korean = translations_for("ko").gettext
    missing = [t for t in sorted(texts) if not HANGUL.search(korean(t))]
    assert not missing, f"no Korean text in backend/locale/ko for: {missing}"


def test_a_templated_refusal_is_formatted_in_either_language():
    with pytest.raises(UnusableInputError) as info:
        images.decode_photo(_png(1200, 1000), max_pixels=10**6)
    exc = info.value
    assert exc.message == (
        "The image is too large (1200x1000 pixels). Please use a photo under 1 megapixels."
    )
    korean = exc.localized(translations_for("ko").gettext)
    assert "1200x1000" in korean and "1메가픽셀" in korean and HANGUL.search(korean)
    assert exc.localized(translations_for("en").gettext) == exc.message


def test_an_eardrum_refusal_translates_its_reason_and_hint_too():
    exc = ear.not_an_eardrum("the picture is too dark")
    assert exc.message.startswith("This does not look like an eardrum photo (the picture is too")
    assert exc.to_json() == {"error": exc.message, "is_eardrum": False}
    korean = exc.localized(translations_for("ko").gettext)
    assert korean.startswith("고막 사진으로 보이지 않습니다(사진이 너무 어둡습니다).")
    assert "다시 찍어 주세요" in korean and "otoscope" not in korean


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "pink").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_cut_off_sheet_names_the_edge_in_korean():
    from backend.inference.ecg import digitize

    exc = UnusableInputError(digitize.MSG_CUT_OFF, params={"edge": digitize.EDGES["left"]})
    assert exc.message.startswith("The left edge of the sheet is cut off.")
    assert exc.localized(translations_for("ko").gettext).startswith("용지의 왼쪽 가장자리가")
    layout = UnusableInputError(digitize.MSG_LAYOUT, params={"rows": 5})
    assert "found 5 rows" in layout.message
    assert "5줄" in layout.localized(translations_for("ko").gettext)


def test_an_empty_detail_stays_empty_in_korean():
    # gettext("") would return the catalog header ("Project-Id-Version: ...")
    exc = UnusableInputError("%(where)s: the EDF file holds no signals.", params={"where": ""})
    korean = exc.localized(translations_for("ko").gettext)
    assert "Project-Id-Version" not in korean and korean.startswith(": ")


@pytest.mark.parametrize("name", ["none", "photo", "unknown", "CSV file"])
def test_a_file_named_like_a_phrase_keeps_its_name_in_korean(name):
    # Only Phrase parameters are translated: a user's file called "none" is not "없음".
    exc = UnusableInputError("%(where)s: the EDF file holds no signals.", params={"where": name})
    assert exc.localized(translations_for("ko").gettext).startswith(f"{name}: ")


def test_a_reader_without_a_file_name_names_the_format_in_korean():
    from backend.inference.ecg.readers import csv_format

    with pytest.raises(UnusableInputError) as info:
        csv_format.read_csv(b"\xff\xfe\x00garbage\x00\x00", None)
    korean = info.value.localized(translations_for("ko").gettext)
    assert info.value.message.startswith("CSV file: ")
    assert korean.startswith("CSV 파일: "), korean
