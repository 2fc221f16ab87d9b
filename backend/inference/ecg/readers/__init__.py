"""ECG signal files -> one normalised `EcgRecord` (standard lead names, mV, float64, fs).

Formats: WFDB (.hea + .dat, also zipped), HDF5, NumPy .npy/.npz, CSV, EDF/EDF+/BDF, HL7 aECG
and GE MUSE XML, DICOM ECG waveforms, and pickles through a restricted unpickler. The format is told by
magic bytes first and by the file name's extension second. Every failure a user can cause is
an `UnusableInputError` whose message says what is wrong and what to send instead.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from backend.inference.ecg.readers.aecg_format import read_aecg
from backend.inference.ecg.readers.csv_format import read_csv
from backend.inference.ecg.readers.dicom_format import read_dicom
from backend.inference.ecg.readers.edf_format import read_edf
from backend.inference.ecg.readers.hdf5_format import read_hdf5
from backend.inference.ecg.readers.muse_format import read_muse
from backend.inference.ecg.readers.numpy_format import read_npy, read_npz
from backend.inference.ecg.readers.pickle_format import read_pickle
from backend.inference.ecg.readers.wfdb_format import header_file_names, read_wfdb
from backend.inference.ecg.readers.xml_tree import local_name, parse_xml_safely
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError

__all__ = ["SIGNAL_FORMATS", "detect_format", "read_ecg_files", "read_ecg_path"]

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_ZIP_MEMBERS = 64
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_EXTENSIONS = {
    ".hea": "wfdb",
    ".dat": "wfdb",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".npy": "npy",
    ".npz": "zip",
    ".zip": "zip",
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".edf": "edf",
    ".bdf": "edf",
    ".rec": "edf",
    ".xml": "xml",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".p": "pickle",
}
SIGNAL_FORMATS = ("wfdb", "hdf5", "npy", "npz", "csv", "edf", "aecg", "muse", "dicom", "pickle")
_XML_READERS = {"AnnotatedECG": read_aecg, "RestingECG": read_muse}


def _read_xml(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("XML file")
    root = parse_xml_safely(data, where)
    reader = _XML_READERS.get(local_name(root.tag))
    if reader is None:
        raise UnusableInputError(
            "%(where)s: XML ECG format <%(root)s> is not supported; export HL7 aECG "
            "(AnnotatedECG), GE MUSE XML (RestingECG), DICOM, EDF or WFDB instead.",
            params={"where": where, "root": local_name(root.tag)},
        )
    return reader(root, where)


_READERS: dict[str, Callable[[bytes, str], EcgRecord]] = {
    "hdf5": read_hdf5,
    "npy": read_npy,
    "csv": read_csv,
    "edf": read_edf,
    "xml": _read_xml,
    "dicom": read_dicom,
    "pickle": read_pickle,
}
_UNSUPPORTED = (
    "Supported ECG files: WFDB (.hea + .dat, or both in a .zip), HDF5 (.h5), NumPy (.npy/.npz), "
    "CSV (also Apple Watch ECG exports), EDF/EDF+, HL7 aECG and GE MUSE XML, DICOM ECG waveforms "
    "and pickled arrays; or a PDF or photo of the printout."
)
# Refusals used more than once; the others are written where they are raised.
MSG_ZIP_DAMAGED = "%(name)s: the .zip archive is damaged or truncated."
MSG_TOO_LARGE = "%(name)s: the file is larger than 100 MB."
MSG_UNKNOWN_FORMAT = "%(name)s: unrecognised file format. " + _UNSUPPORTED
MSG_DAMAGED = (
    "The ECG file is damaged or not in a layout CareLens reads (%(error)s). " + _UNSUPPORTED
)


def detect_format(name: str, data: bytes) -> str:
    """One of SIGNAL_FORMATS (or 'zip', 'xml', 'image', 'unknown'): magic bytes, then extension."""
    head = data[:16]
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if any(data[offset : offset + 8] == _HDF5_MAGIC for offset in (0, 512, 1024, 2048)):
        return "hdf5"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith((b"0       ", b"\xffBIOSEMI")):
        return "edf"
    if data[128:132] == b"DICM":
        return "dicom"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if head[4:8] == b"ftyp":
        return "image"  # HEIC/AVIF
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "xml"
    suffix = PurePosixPath(name.lower()).suffix
    return _EXTENSIONS.get(suffix, "unknown")


def _unzip(name: str, data: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [
            i
            for i in archive.infolist()
            if not i.is_dir()
            and not i.filename.startswith("__MACOSX/")
            and not PurePosixPath(i.filename).name.startswith(".")
        ]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise UnusableInputError(MSG_ZIP_DAMAGED, params={"name": name}) from None
    if len(infos) > MAX_ZIP_MEMBERS:
        raise UnusableInputError(
            "%(name)s: the .zip holds %(count)d files; send one record.",
            params={"name": name, "count": len(infos)},
        )
    if sum(i.file_size for i in infos) > MAX_UNZIPPED_BYTES:
        raise UnusableInputError(
            "%(name)s: the .zip unpacks to more than 200 MB.", params={"name": name}
        )
    members: dict[str, bytes] = {}
    for info in infos:
        if info.flag_bits & 0x1:
            raise UnusableInputError(
                "%(name)s: encrypted .zip archives are not supported.", params={"name": name}
            )
        try:
            with archive.open(info) as handle:
                content = handle.read(info.file_size + 1)
        except Exception:  # noqa: BLE001 - CRC, truncation, unsupported compression: all damage to the user
            raise UnusableInputError(MSG_ZIP_DAMAGED, params={"name": name}) from None
        if len(content) > info.file_size:
            raise UnusableInputError(
                "%(name)s: the .zip archive is inconsistent.", params={"name": name}
            )
        members[PurePosixPath(info.filename).name] = content
    if not members:
        raise UnusableInputError("%(name)s: the .zip archive is empty.", params={"name": name})
    return members


def _read(files: dict[str, bytes]) -> EcgRecord:
    if not files:
        raise UnusableInputError("No ECG file was given.")
    expanded: dict[str, bytes] = {}
    formats: dict[str, str] = {}
    for raw_name, data in files.items():
        name = PurePosixPath(str(raw_name).replace("\\", "/")).name or "upload"
        if not data:
            raise UnusableInputError("%(name)s: the file is empty.", params={"name": name})
        if len(data) > MAX_FILE_BYTES:
            raise UnusableInputError(MSG_TOO_LARGE, params={"name": name})
        fmt = detect_format(name, data)
        # A WFDB signal file is raw samples whose first bytes may look like any magic number.
        if name.lower().endswith((".dat", ".hea")):
            fmt = "wfdb"
        if fmt == "zip":
            members = _unzip(name, data)
            if all(m.endswith(".npy") for m in members):
                return read_npz(members, name)
            if any(
                detect_format(m, b) == "zip" and not m.lower().endswith(".dat")
                for m, b in members.items()
            ):
                raise UnusableInputError(
                    "%(name)s: archives inside archives are not supported.", params={"name": name}
                )
            for member, content in members.items():
                if not content:
                    raise UnusableInputError(
                        "%(name)s: %(member)s is empty.", params={"name": name, "member": member}
                    )
                expanded[member] = content
                formats[member] = detect_format(member, content)
        else:
            expanded[name] = data
            formats[name] = fmt

    if any(n.lower().endswith(".hea") for n in expanded):
        return read_wfdb(expanded)
    if len(expanded) > 1:
        raise UnusableInputError(
            "Several files were given (%(names)s); send one ECG file, or a WFDB .hea with its .dat.",
            params={"names": ", ".join(sorted(expanded))},
        )
    (name, data), fmt = next(iter(expanded.items())), next(iter(formats.values()))
    if fmt == "wfdb":
        raise UnusableInputError(
            "%(name)s: a WFDB signal file needs its .hea header; send both (or a .zip of both).",
            params={"name": name},
        )
    if fmt == "image":
        raise UnusableInputError(
            "%(name)s: this is an image, not an ECG signal file; analyse it as a photo of the "
            "ECG printout.",
            params={"name": name},
        )
    if fmt == "unknown":
        raise UnusableInputError(MSG_UNKNOWN_FORMAT, params={"name": name})
    return _READERS[fmt](data, name)


def read_ecg_files(files: dict[str, bytes]) -> EcgRecord:
    """Read one ECG record from uploaded files: a single file, a .hea + .dat set, or a .zip.

    Raises UnusableInputError (and nothing else) for any file a user can send.
    """
    try:
        return _read(files)
    except UnusableInputError:
        raise
    except MemoryError:
        raise UnusableInputError("The ECG file is too large to read.") from None
    except Exception as exc:  # a reader met damage its library reports in its own way
        log.warning("ECG file reader failed on damaged input", exc_info=True)
        raise UnusableInputError(
            MSG_DAMAGED, params={"error": f"{type(exc).__name__}: {exc}"}
        ) from None


def read_ecg_path(path: Path | str) -> EcgRecord:
    """Read an ECG file from disk; a WFDB record is given by its .hea path (siblings are gathered)."""
    return read_ecg_files(gather_ecg_files(path))


def gather_ecg_files(path: Path | str) -> dict[str, bytes]:
    """The bytes read_ecg_files needs for a file on disk: the file itself, and for a WFDB
    header (or its .dat) every file the header names, multi-segment records included."""
    path = Path(path)
    if path.suffix.lower() == ".dat" and path.with_suffix(".hea").is_file():
        path = path.with_suffix(".hea")
    if not path.is_file():
        raise UnusableInputError("%(path)s: no such file.", params={"path": str(path)})
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UnusableInputError(MSG_TOO_LARGE, params={"name": path.name})
    files = {path.name: path.read_bytes()}
    if path.suffix.lower() == ".hea":
        pending = [path.name]
        while pending:
            current = pending.pop()
            try:
                text = files[current].decode("ascii")
            except UnicodeDecodeError:
                break  # read_wfdb says so
            for ref in header_file_names(text):
                sibling = path.parent / PurePosixPath(ref).name
                if ref in files or not sibling.is_file() or ref == "~":
                    continue
                if sibling.stat().st_size > MAX_FILE_BYTES:
                    raise UnusableInputError(MSG_TOO_LARGE, params={"name": sibling.name})
                files[ref] = sibling.read_bytes()
                if ref.lower().endswith(".hea"):
                    pending.append(ref)
    return files
