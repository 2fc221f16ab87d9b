"""Parsing an uploaded XML ECG without the XML attacks, and walking it by local tag names.

The standard library's parser is used after refusing what makes XML dangerous: entity
declarations (expansion bombs, external entities/XXE) and a DOCTYPE's internal subset, where
those live. A bare external DOCTYPE (GE MUSE writes `<!DOCTYPE RestingECG SYSTEM
"restecg.dtd">`) is allowed: expat neither fetches nor reads it. The declared encoding
(MUSE: ISO-8859-1) is honoured because the bytes go to the parser as they are.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from backend.inference.ecg.readers.normalise import error_text
from backend.inference.errors import UnusableInputError

_DANGEROUS_DTD = re.compile(rb"<!\s*ENTITY|<!\s*DOCTYPE[^>]*\[", re.IGNORECASE)


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in elem if local_name(c.tag) == name]


def child(elem: ET.Element, name: str) -> ET.Element | None:
    found = children(elem, name)
    return found[0] if found else None


def child_text(elem: ET.Element, name: str) -> str:
    found = child(elem, name)
    return (found.text or "").strip() if found is not None else ""


def parse_xml_safely(data: bytes, where: str) -> ET.Element:
    if _DANGEROUS_DTD.search(data):
        raise UnusableInputError(
            "%(where)s: XML with a DOCTYPE/ENTITY declaration is refused for safety.",
            params={"where": where},
        )
    try:
        return ET.fromstring(data)
    except (ET.ParseError, LookupError) as exc:  # LookupError: an unknown declared encoding
        raise UnusableInputError(
            "%(where)s: the XML is malformed or truncated (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None
