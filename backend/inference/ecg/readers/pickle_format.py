"""Pickled signals (HearTrack's format) through an unpickler that can only rebuild numbers.

`pickle.load` calls any importable callable a file names; this unpickler resolves only the
few globals numpy needs to rebuild an ndarray, so a crafted pickle cannot run code: every
other global (os.system, builtins.eval, subprocess.Popen...) raises before anything is called.
"""

from __future__ import annotations

import codecs
import io
import pickle
from collections.abc import Mapping

import numpy as np

from backend.inference.ecg.readers.normalise import MAX_VALUES, error_text
from backend.inference.ecg.readers.numpy_format import record_from_mapping
from backend.inference.ecg.record import EcgRecord
from backend.inference.errors import Phrase, UnusableInputError


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # numpy arrays pickled with protocol 2 carry their bytes as `_codecs.encode(str, 'latin1')`.
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin1 byte strings are accepted")
    return codecs.encode(text, "latin1", errors)


def _frombuffer(buf: object, dtype: np.dtype, shape: tuple, order: str) -> np.ndarray:
    # Protocol 5 (Python's default) pickles arrays as numpy._core.numeric._frombuffer.
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are forbidden")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order)


def _allowed() -> dict[tuple[str, str], object]:
    from numpy import ndarray

    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = np._core.multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only numpy's array-rebuilding globals; lists, dicts, tuples and numbers need none.

    Object arrays can only hold what this same unpickler built, and are refused afterwards
    when the signal is converted to numbers.
    """

    _ALLOWED = _allowed()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is forbidden") from None


def _count_values(obj: object, limit: int) -> None:
    """Refuse nested containers with more than `limit` leaves (shared references multiply)."""
    stack = [obj]
    count = 0
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
            count += len(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
            count += len(item)
        elif isinstance(item, np.ndarray):
            count += item.size
        if count > limit:
            raise UnusableInputError("The pickled data is too large for one ECG recording.")


def read_pickle(data: bytes, name: str) -> EcgRecord:
    where = name or Phrase("pickle file")
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise UnusableInputError(
            "%(where)s: the pickle holds more than plain arrays and numbers (%(error)s); only "
            "arrays, lists and dicts of numbers are accepted.",
            params={"where": where, "error": error_text(exc)},
        ) from None
    except RecursionError:
        raise UnusableInputError(
            "%(where)s: the pickle is nested too deeply.", params={"where": where}
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt streams raise EOFError, ValueError, ...
        raise UnusableInputError(
            "%(where)s: the pickle is damaged or truncated (%(error)s).",
            params={"where": where, "error": error_text(exc)},
        ) from None
    _count_values(obj, 2 * MAX_VALUES)
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise UnusableInputError(
                "%(where)s: the pickled dict must have text keys.", params={"where": where}
            )
        return record_from_mapping(obj, fmt="pickle", where=where)
    if isinstance(obj, (np.ndarray, list, tuple)):
        return record_from_mapping({"signal": obj}, fmt="pickle", where=where)
    raise UnusableInputError(
        "%(where)s: the pickle holds a %(type)s; expected an array or a dict "
        "with a 'signal' array.",
        params={"where": where, "type": type(obj).__name__},
    )
