"""A restricted unpickler: a pickle may only name the globals of an allow-list, each mapped to a safe replacement.

Unpickling runs whatever callables a pickle names (`os.system`, `builtins.eval`, a class whose `__reduce__` does
anything). `restricted_load` resolves every global a pickle references (GLOBAL, STACK_GLOBAL and the EXT opcodes
all go through `find_class`) against a per-format table `{(module, name): replacement}`; a global outside the table
stops the load with `UnsafePickleError` before anything named by the pickle is called. The replacements are our
own functions, written so that even hostile arguments cannot run code or allocate beyond the file's size:

* `SAFE_CONTAINER_GLOBALS`: `collections.OrderedDict`, `builtins.set` / `frozenset` (protocol <= 3 pickles sets
  by calling them), `_codecs.encode` for latin-1 text only (protocol <= 2 stores bytes that way), and
  `dnnlib.util.EasyDict` as a plain dict subclass.
* `NUMPY_GLOBALS`: `numpy.dtype` and numpy scalars (old and new module paths), `numpy.core.multiarray._reconstruct`
  and `numpy.ndarray` for arrays (TF pickles); object dtypes are refused (they would unpickle nested objects).
* `TORCH_TENSOR_GLOBALS`: `torch._utils._rebuild_tensor_v2` (bounds of size / stride / offset checked against the
  storage before a view is made), `torch._utils._rebuild_parameter(_with_state)` and
  `torch.storage._load_from_bytes` (a nested legacy torch file, loaded with torch's own restricted unpickler,
  `torch.load(weights_only=True)`).

Format modules combine these tables with their own entries (the ADA importer adds
`torch_utils.persistence._reconstruct_persistent_obj`; the TF importer its network stub) and call `restricted_load`.
Persistent ids (torch's zip format) are refused here: torch zip checkpoints go through `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

__all__ = [
    "NUMPY_GLOBALS",
    "CheckedArray",
    "SAFE_CONTAINER_GLOBALS",
    "TORCH_TENSOR_GLOBALS",
    "EasyDict",
    "UnsafePickleError",
    "restricted_load",
    "torch_refusal",
]

_MODULE_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol 0-2 (Python 2 era) module names


class UnsafePickleError(ValueError):
    """A pickle references a global outside the allow-list of its format; nothing it names was called."""

    def __init__(self, global_name: str, where: str = "", reason: str = "") -> None:
        self.global_name = global_name  # "module.name" of the refused global
        self.where = where  # the file
        self.reason = reason  # why it was refused, when not simply absent from the allow-list
        prefix = f"{where}: " if where else ""
        why = reason or "it is not one of the globals this checkpoint format needs"
        super().__init__(f"{prefix}refusing to unpickle: the pickle references {global_name!r}, and {why}. "
                         "Nothing from the file was executed. Load only checkpoints from sources you trust; an "
                         "official checkpoint that is refused here may be a format sgmodels does not know yet")


class EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict`: a plain dict (attribute access is not needed to read checkpoints)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves globals only through `allowed`; refuses persistent ids."""

    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any], where: str) -> None:
        super().__init__(file)
        self._allowed = allowed
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        module = _MODULE_ALIASES.get(module, module)
        if (module, name) not in self._allowed:
            raise UnsafePickleError(f"{module}.{name}", self._where)
        return self._allowed[(module, name)]

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("persistent id", self._where,
                                "persistent ids (torch's zip format) are not part of this pickle format")


def restricted_load(file: BinaryIO | str | os.PathLike[str], allowed: Mapping[tuple[str, str], Any]) -> Any:
    """Unpickle `file` (an open binary file or a path) allowing only the globals of `allowed`.

    Args:
        file: a pickle file (any protocol) or a binary stream positioned at its start.
        allowed: (module, name) -> the object returned for that global (a safe replacement callable or class).
            Python 2 module names (`__builtin__`, `copy_reg`) are looked up under their Python 3 names.
    Returns:
        The unpickled object.
    Raises:
        UnsafePickleError (a ValueError): the pickle names a global outside `allowed` (the message names it).
        ValueError: a damaged or truncated pickle, or a replacement refused its arguments.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as stream:
            return _load_stream(stream, allowed, str(file))
    return _load_stream(file, allowed, str(getattr(file, "name", "pickle")))


def check_declared_lengths(data: bytes, where: str) -> None:
    """ValueError naming `where` when an opcode of the pickle declares more bytes than the pickle holds.

    The C unpickler allocates a BINBYTES / BINUNICODE / FRAME of the declared length before reading it, so 20 bytes
    declaring 2**60 would be a MemoryError; pickletools' opcode walk reads arguments without that allocation (a
    short argument is its ValueError), so the declared lengths are checked against the bytes that are there first.
    """
    size = len(data)
    try:
        for opcode, argument, position in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "FRAME" and isinstance(argument, int) and position is not None \
                    and position + 9 + argument > size:
                raise ValueError(f"a FRAME at byte {position} declares {argument:,} bytes, but only "
                                 f"{size - position - 9:,} follow")
    except ValueError as exc:  # pickletools: "expected N bytes in a ..., but only M remain", bad opcodes
        raise ValueError(f"{where}: not a readable pickle (damaged, truncated or forged): {exc}") from None


def _load_stream(stream: BinaryIO, allowed: Mapping[tuple[str, str], Any], where: str) -> Any:
    data = stream.read()  # the whole pickle: what its opcodes may legitimately reference
    check_declared_lengths(data, where)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), allowed, where).load()
    except UnsafePickleError as exc:
        if exc.where:
            raise
        raise UnsafePickleError(exc.global_name, where, exc.reason) from None  # raised by a replacement: name the file
    except ValueError as exc:  # a replacement refused its arguments (an object dtype, say): name the file
        raise ValueError(f"{where}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError, RuntimeError,
            MemoryError, OverflowError) as exc:
        raise ValueError(f"{where}: not a readable pickle (damaged, truncated or of an unexpected structure): "
                         f"{type(exc).__name__}: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------------
# Safe replacements.


def _set(items: Any = ()) -> set:
    return set(items)


def _frozenset(items: Any = ()) -> frozenset:
    return frozenset(items)


def _codecs_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """`_codecs.encode(text, 'latin1')`: how pickle protocol <= 2 stores bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError("_codecs.encode is only allowed for latin-1 bytes")
    return text.encode("latin1")


SAFE_CONTAINER_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "set"): _set,
    ("builtins", "frozenset"): _frozenset,
    ("dnnlib.util", "EasyDict"): EasyDict,
}


def _checked_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.hasobject:
        raise ValueError(f"numpy dtype {dtype} holds Python objects, which a checkpoint never needs")
    return dtype


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """`numpy.dtype(spec, align, copy)` for plain (non-object) dtypes; the pickle's BUILD then sets its state."""
    if not isinstance(spec, str):
        raise ValueError(f"numpy dtype spec must be a string, got {type(spec).__name__}")
    return _checked_dtype(np.dtype(spec, align=bool(align), copy=bool(copy)))


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """A numpy scalar from its dtype and raw bytes (never an object scalar)."""
    if not isinstance(dtype, np.dtype) or not isinstance(data, bytes):
        raise ValueError("a numpy scalar needs a dtype and its bytes")
    return np.frombuffer(data, dtype=_checked_dtype(dtype), count=1)[0]


class CheckedArray(np.ndarray):
    """The ndarray that `_reconstruct` returns: its BUILD step (`__setstate__`) refuses dtypes holding Python objects.

    The dtype arrives in the array's state, after its own BUILD, which may set flags; checking it here (not when the
    dtype was created) also refuses a dtype whose object flag was forged, before numpy reads raw bytes with it.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5) or not isinstance(state[-3], np.dtype):
            raise ValueError("unexpected numpy array state")
        _checked_dtype(state[-3])
        super().__setstate__(state)


def _numpy_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`: an empty array that BUILD fills from raw bytes."""
    if cls is not np.ndarray:
        raise ValueError("only numpy.ndarray can be reconstructed")
    return np.ndarray.__new__(CheckedArray, (0,), "b")


def _numpy_frombuffer(data: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    """`numpy.core.numeric._frombuffer` (protocol 5 arrays): raw bytes viewed as a plain-dtype array."""
    if not isinstance(data, (bytes, bytearray)) or not isinstance(dtype, np.dtype):
        raise ValueError("a numpy array needs raw bytes and a dtype")
    return np.frombuffer(data, dtype=_checked_dtype(dtype)).reshape(shape, order="F" if order == "F" else "C")


NUMPY_GLOBALS: dict[tuple[str, str], Any] = {
    **{(module, "_frombuffer"): _numpy_frombuffer for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(module, "scalar"): _numpy_scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_reconstruct"): _numpy_reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
}
# An ndarray's BUILD step calls CheckedArray.__setstate__ with (version, shape, dtype, is_fortran, raw bytes): the raw
# bytes come from the file and a dtype with objects is refused, so no nested object is unpickled.


def _load_from_bytes(data: Any) -> Any:
    """`torch.storage._load_from_bytes`: a storage saved by `torch.save` inside the pickle, read by torch's own
    restricted unpickler (weights_only=True), so a payload hidden in the nested file is refused as well."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"a nested torch file must be bytes, got {type(data).__name__}")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError("torch.storage._load_from_bytes",
                                reason=f"the nested torch file it holds was refused: {torch_refusal(exc)}") from None


def torch_refusal(exc: Exception) -> str:
    """The informative line of torch's weights-only refusal (the global it blocked), else its first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "GLOBAL" in line), lines[0] if lines else type(exc).__name__)[:300]


def _storage_of(storage: Any) -> tuple[torch.UntypedStorage, torch.dtype]:
    """(bytes, element dtype) of a storage as torch.load returns it (a TypedStorage for the official files)."""
    with warnings.catch_warnings():  # TypedStorage accessors warn that the class is deprecated
        warnings.simplefilter("ignore", UserWarning)
        if isinstance(storage, torch.storage.TypedStorage):
            return storage._untyped_storage, storage.dtype
    if isinstance(storage, torch.UntypedStorage):
        return storage, torch.uint8
    raise ValueError(f"a tensor must be rebuilt from a torch storage, got {type(storage).__name__}")


def _check_view(size: tuple, stride: tuple, offset: Any, available: int) -> None:
    """Refuse a view whose elements lie outside its storage (checked before torch makes it)."""
    ints = [offset, *size, *stride]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints) or len(size) != len(stride):
        raise ValueError(f"invalid tensor view: size {size}, stride {stride}, offset {offset}")
    if any(n == 0 for n in size):
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= available:
        raise ValueError(f"tensor view (size {size}, stride {stride}, offset {offset}) reaches element {last} of a "
                         f"storage of {available} elements")


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_tensor_v2` with the view checked against the storage (hooks and metadata dropped)."""
    size, stride = tuple(size), tuple(stride)
    untyped, dtype = _storage_of(storage)
    _check_view(size, stride, storage_offset, untyped.nbytes() // torch.empty([], dtype=dtype).element_size())
    return torch.empty([0], dtype=dtype).set_(untyped, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    """`torch._utils._rebuild_parameter(_with_state)`: the tensor itself (parameters are copied into modules)."""
    if not isinstance(data, torch.Tensor):
        raise ValueError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    return data


TORCH_TENSOR_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
}


def peek_bytes(path: Path, count: int = 1 << 20) -> bytes:
    """The first `count` bytes of a file (format detection reads no more)."""
    with open(path, "rb") as stream:
        return stream.read(count)
