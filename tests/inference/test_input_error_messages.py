"""Every refusal of the photo lanes reads in Korean too: the English text stays the error's
`message` (CLI, API default), `localized(gettext)` gives the user's language."""

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


def _refusal_texts(module: Path) -> set[str]:
    """English texts a person can be shown from `module`: the first argument of every
    UnusableInputError(...) / not_an_eardrum(...), the reasons screen_crop returns, the
    issues quality_issues returns, and RETRY_HINT."""
    tree = ast.parse(module.read_text())
    texts = set()
    for node in ast.walk(tree):
        refusal = getattr(getattr(node, "func", None), "id", "")
        first = node.args[0] if refusal and node.args else None
        if refusal in ("UnusableInputError", "not_an_eardrum") and isinstance(first, ast.Constant):
            texts.add(first.value)
        if isinstance(node, ast.FunctionDef) and node.name in ("screen_crop", "quality_issues"):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, (ast.Tuple, ast.List)):
                    first = ret.value.elts[0] if ret.value.elts else None
                    if isinstance(first, ast.Constant) and isinstance(first.value, str):
                        texts.add(first.value)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RETRY_HINT":
            texts.add(node.value.value)
    return texts


@pytest.mark.parametrize("module", ["images.py", "skin.py", "ear.py"])
def test_every_photo_refusal_has_korean_text(module):
    texts = _refusal_texts(INFERENCE / module)
    assert len(texts) >= 3  # the scan found the module's refusals
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
