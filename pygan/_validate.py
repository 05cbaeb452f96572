"""Argument checks shared by every pygan module, with one error style.

Internal API (used across pygan; not part of the public API, but stable within the package): each
checker takes the value, the argument's ``name`` and ``where`` (the function or command the user
called, e.g. ``"gradient_penalty"``), returns the value in canonical form, and raises before
anything is modified. Messages always start with ``"where: name"`` and then say what was expected
and what was given::

    gradient_penalty: weight must be a finite number >= 0, got -1.0        (a value)
    interpolate: alpha has dtype torch.int64; expected a floating-point tensor   (a tensor property)

TypeError for the wrong kind of object (a str where a number goes, a bool where a number goes, a
non-tensor, an integer tensor where a float tensor goes), ValueError for a right kind with a wrong
value (NaN, out of range, wrong shape or device, a missing file).

Numbers:
    :func:`real` (any real number: int, float, NumPy scalar, one-element tensor; never bool),
    :func:`number` (the same with finiteness and a range: ``number(x, "lr", "ClippedRMSprop",
    low=0)`` is "a finite number >= 0"), :func:`integer` (an int in a range, never bool or float),
    :func:`boolean`, :func:`choice` (one of a few strings).
Objects:
    :func:`generator` (a ``torch.Generator`` or None), :func:`callable_` (a function or module).
Tensors:
    :func:`tensor` (type, floating dtype, dense layout, at least ``min_dim`` dims, not meta),
    :func:`same_device` (meta mixed with real tensors: the dispatcher would pick the meta kernel
    and silently skip the real ones), :func:`no_shared_memory` (two arguments, one memory).
Files:
    :func:`existing_file` (a path that exists and is a file or a directory).
Deprecations:
    :func:`deprecated_positional` (arguments that became keyword-only, accepted by position for one
    release with a DeprecationWarning), :func:`renamed_keywords` (a decorator for parameters that
    were renamed, accepting the old keyword for one release with a DeprecationWarning).

A command-line caller passes ``where=None`` and a flag as ``name`` (``"--lr"``), giving
``"--lr must be a finite number >= 0, got -1.0"``; it turns the ValueError/TypeError into its own
exit code.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["FLOAT_DTYPES", "deprecated_positional", "renamed_keywords", "real", "number", "integer", "boolean", "choice", "generator", "callable_",
           "tensor", "same_device", "no_shared_memory", "existing_file", "label"]

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOAT_NAMES = "float16, bfloat16, float32 or float64"


def label(name: str, where: str | None = None) -> str:
    """``"where: name"`` (or ``name`` alone): how every message starts."""
    return f"{where}: {name}" if where else name


def _kind(value) -> str:
    return type(value).__name__


def _scalar(value):
    """A one-element tensor or NumPy array as a Python number; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
            return value.item()  # a host sync on a GPU, once per call
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "size", 0) == 1:
        dtype = getattr(value, "dtype", None)
        if dtype is not None and dtype.kind in "iuf":
            return value.item()
    return value


def real(value, name: str, where: str | None = None, *, allow_none: bool = False) -> float | None:
    """A real number as a float (NaN and infinities pass; use :func:`number` to refuse them).

    Accepts int, float, NumPy scalars and one-element real tensors; refuses bool (``True`` is an int
    in Python, never a meaningful weight), str, complex and anything else with TypeError.
    """
    if value is None and allow_none:
        return None
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label(name, where)} must be a real number{' or None' if allow_none else ''}, "
                        f"got {_kind(value)}")
    return float(value)


def _range_text(low, high, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    return " and ".join(parts)


def number(value, name: str, where: str | None = None, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> float | None:
    """A finite real number in [low, high] (or open at either end) as a float.

    Args:
        value: the user's value (see :func:`real` for the accepted types).
        name, where: the argument and the function, for the message.
        low, high: the bounds (None: unbounded on that side).
        low_open, high_open: exclude the bound itself (``low=0, low_open=True`` is "> 0").
        allow_none: None is returned as None.

    Returns:
        The value as a float (or None).

    Raises:
        TypeError: not a real number (or a bool). ValueError: NaN, infinite or out of range, as
        ``"where: name must be a finite number >= 0, got -1.0"``.
    """
    value = real(value, name, where, allow_none=allow_none)
    if value is None:
        return None
    bad = not math.isfinite(value)
    if low is not None and (value <= low if low_open else value < low):
        bad = True
    if high is not None and (value >= high if high_open else value > high):
        bad = True
    if bad:
        rng = _range_text(low, high, low_open, high_open)
        what = "a finite number" + (f" {rng}" if rng else "") + (", or None" if allow_none else "")
        raise ValueError(f"{label(name, where)} must be {what}, got {value!r}")
    return value


def integer(value, name: str, where: str | None = None, *, low: int | None = None,
            high: int | None = None) -> int:
    """An int in [low, high]; refuses bool and float (even 2.0) with TypeError, NumPy ints pass."""
    if isinstance(value, torch.Tensor) or type(value).__module__ == "numpy":
        value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{label(name, where)} must be an int, got {_kind(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        rng = _range_text(low, high, False, False)
        raise ValueError(f"{label(name, where)} must be an int {rng}, got {value}")
    return value


def boolean(value, name: str, where: str | None = None) -> bool:
    """True or False (NumPy bools too); an int or a str is refused with TypeError."""
    if type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None and value.dtype.kind == "b":
        value = bool(value)
    if not isinstance(value, bool):
        raise TypeError(f"{label(name, where)} must be True or False, got {_kind(value)}")
    return value


def choice(value, name: str, options: Sequence[str], where: str | None = None) -> str:
    """One of ``options`` (strings), e.g. a reduction: ``"name must be 'a', 'b' or 'c', got 'd'"``."""
    if not isinstance(value, str):
        raise TypeError(f"{label(name, where)} must be a str, got {_kind(value)}")
    if value not in options:
        quoted = [repr(o) for o in options]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        raise ValueError(f"{label(name, where)} must be {listed}, got {value!r}")
    return value


def generator(value, name: str = "generator", where: str | None = None) -> torch.Generator | None:
    """A ``torch.Generator`` or None (a seed such as 5 is refused: pass
    ``torch.Generator().manual_seed(5)``)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{label(name, where)} must be a torch.Generator or None, got {_kind(value)} "
                        f"(for a seed s, pass torch.Generator().manual_seed(s))")
    return value


def callable_(value, name: str, where: str | None = None, what: str = "callable"):
    """A callable (``what`` describes it in the message, e.g. "callable (an nn.Module or a function)")."""
    if not callable(value):
        raise TypeError(f"{label(name, where)} must be {what}, got {_kind(value)}")
    return value


def tensor(value, name: str, where: str | None = None, *, floating: bool = True, dense: bool = True,
           min_dim: int = 0, allow_meta: bool = True) -> torch.Tensor:
    """A tensor, checked for what the fused ops need, with the C++ checks' wording.

    Args:
        value: the user's value.
        name, where: the argument and the function.
        floating: require float16, bfloat16, float32 or float64.
        dense: require the strided layout (not sparse or another layout).
        min_dim: require at least this many dims (1: a batch along dim 0).
        allow_meta: False refuses tensors on the meta device (they hold no data).

    Returns:
        The tensor.

    Raises:
        TypeError: not a tensor, another layout, another dtype. ValueError: too few dims, meta.
    """
    where_name = label(name, where)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{where_name} must be a torch.Tensor, got {_kind(value)}")
    if dense and value.layout != torch.strided:
        raise TypeError(f"{where_name} has layout {value.layout}; expected a dense (strided) tensor")
    if floating and value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where_name} has dtype {value.dtype}; expected {_FLOAT_NAMES}")
    if value.dim() < min_dim:
        if min_dim == 1:
            raise ValueError(f"{where_name} is 0-d; expected a batch of samples along dim 0 (shape [B, ...])")
        raise ValueError(f"{where_name} has {value.dim()} dims; expected at least {min_dim}")
    if not allow_meta and value.is_meta:
        raise ValueError(f"{where_name} is on the meta device; expected a tensor with data")
    return value


def same_device(named: Sequence[tuple[str, torch.Tensor]], where: str | None = None) -> None:
    """Refuse meta tensors among arguments that also hold tensors with data.

    The dispatcher sends a call that has any meta tensor among its arguments to the meta kernel,
    which computes nothing: without this check the other tensors would be silently left unchanged.
    An all-meta call stays allowed (shape-only computation, as torch's own ops do on meta).

    Args:
        named: (label, tensor) pairs, e.g. ``[("tensors[0]", t0), ("tensors[1]", t1)]``.
        where: the function, for the message.

    Raises:
        ValueError: ``"clip_: tensors[1] is on the meta device but tensors[0] is on cpu; ..."``.
    """
    first_real = next(((arg, t) for arg, t in named if t.device.type != "meta"), None)
    if first_real is None:
        return
    for arg, t in named:
        if t.device.type == "meta":
            raise ValueError(f"{label(arg, where)} is on the meta device but {first_real[0]} is on "
                             f"{first_real[1].device}; expected tensors with data (a meta tensor would make "
                             "the call skip every tensor)")


def _span(t: torch.Tensor) -> tuple[int, int]:
    # The bytes [start, end) the tensor may touch in its storage (torch strides are never negative).
    extent = 1 + sum((s - 1) * st for s, st in zip(t.shape, t.stride()))
    start = t.data_ptr()
    return start, start + extent * t.element_size()


def no_shared_memory(written: Sequence[tuple[str, torch.Tensor]], read: Sequence[tuple[str, torch.Tensor]] = (),
                     where: str | None = None) -> None:
    """Refuse an in-place update whose arguments overlap in memory (e.g. a state that is the parameter).

    Tensors that are only read may share memory with each other; a written tensor may share memory
    with nothing else. Overlap is judged on the bytes each tensor spans, so disjoint views of one
    buffer pass. O(n log n) in the number of tensors.

    Args:
        written: (label, tensor) pairs of the tensors updated in place, e.g. ``("params[0]", p)``.
        read: (label, tensor) pairs of the tensors only read.
        where: the function, for the message.

    Raises:
        ValueError: ``"rmsprop_step_: square_avgs[0] shares memory with params[0]; expected separate
        tensors ..."``. Empty, meta and non-strided (sparse) tensors are skipped (no memory to
        compare; the op's own checks refuse the sparse ones), and so is the whole check while
        ``torch.compile`` traces (fake tensors have no addresses).
    """
    if torch.compiler.is_compiling():
        return
    spans = []
    for is_written, pairs in ((True, written), (False, read)):
        for arg, t in pairs:
            if t.numel() and t.layout == torch.strided and t.device.type != "meta":
                start, end = _span(t)
                spans.append((str(t.device), start, end, is_written, arg))
    spans.sort(key=lambda s: (s[0], s[1]))
    device = None
    for dev, start, end, is_written, arg in spans:
        if dev != device:  # (end, label) of the span reaching furthest so far: any, written
            device, any_end, written_end = dev, (-1, None), (-1, None)
        other = any_end if is_written else written_end
        if start < other[0]:
            raise ValueError(f"{label(arg, where)} shares memory with {other[1]}; expected separate tensors "
                             "(an in-place update would read values it has already overwritten)")
        if end > any_end[0]:
            any_end = (end, arg)
        if is_written and end > written_end[0]:
            written_end = (end, arg)


def existing_file(value, name: str, where: str | None = None, *, directory: bool = False) -> Path:
    """A path (str or os.PathLike) to an existing file (or directory with ``directory=True``)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{label(name, where)} must be a path (str or os.PathLike), got {_kind(value)}")
    path = Path(value)
    kind = "directory" if directory else "file"
    if not path.exists():
        raise ValueError(f"{label(name, where)} must be an existing {kind}, got {str(path)!r} (no such {kind})")
    if directory and not path.is_dir():
        raise ValueError(f"{label(name, where)} must be an existing directory, got {str(path)!r} (not a directory)")
    if not directory and path.is_dir():
        raise ValueError(f"{label(name, where)} must be an existing file, got {str(path)!r} (a directory)")
    return path


def deprecated_positional(args: tuple, defaults: dict, where: str, keywords: dict) -> dict:
    """Arguments that became keyword-only, still accepted by position for one release.

    A function ``f(a, b, *args, c=None, d=1.0)`` that used to be ``f(a, b, c=None, d=1.0)`` calls
    ``c, d = deprecated_positional(args, {"c": None, "d": 1.0}, "f", {"c": c, "d": d}).values()``
    and gets the values the caller meant, after a DeprecationWarning that says how to call it now.

    Args:
        args: the extra positional arguments the caller gave (may be empty: no warning).
        defaults: the names those positions had, in order, with their defaults.
        where: the function, for the messages.
        keywords: the values received by keyword (a value other than the default counts as given).

    Returns:
        ``{name: value}`` for every name in ``defaults``, positional values taking their place.

    Raises:
        TypeError: more positional arguments than names, or one given both by position and keyword.
    """
    values = dict(keywords)
    if not args:
        return values
    names = list(defaults)
    if len(args) > len(names):
        raise TypeError(f"{where}: expected at most {len(names)} arguments after the positional ones "
                        f"({', '.join(names)}), got {len(args)}")
    given = names[:len(args)]
    for name, value in zip(given, args):
        if keywords[name] is not defaults[name] and keywords[name] != defaults[name]:
            raise TypeError(f"{where}: got {name} both by position and by keyword")
        values[name] = value
    warnings.warn(f"{where}: passing {', '.join(given)} by position is deprecated and will stop working in the "
                  f"next release; pass {', '.join(f'{n}=...' for n in given)} by keyword", DeprecationWarning,
                  stacklevel=3)
    return values


def renamed_keywords(where: str, **renamed: str):
    """A decorator for a function whose parameters were renamed: the old keywords still work for one
    release, with a DeprecationWarning that names the new spelling.

    ``@renamed_keywords("Trainer", generator="G", critic="D")`` on ``def __init__(self, G, D, ...)``
    lets ``Trainer(generator=g, critic=d, ...)`` run as ``Trainer(G=g, D=d, ...)``. Positional calls
    are untouched, and the decorated function keeps its signature (``inspect.signature`` shows the
    new names).

    Args:
        where: the function, for the messages.
        **renamed: ``old_name="new_name"`` pairs.

    Returns:
        The decorator.

    Raises (from the decorated function):
        TypeError: a value given both under the old name and under the new one (by keyword or by
        position).
    """
    def decorate(fn):
        params = list(inspect.signature(fn).parameters.values())
        positions = {p.name: i for i, p in enumerate(params)
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
        for new in renamed.values():
            if new not in {p.name for p in params}:
                raise AssertionError(f"renamed_keywords: {fn.__qualname__} has no parameter {new!r}")

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in renamed.items():
                if old not in kwargs:
                    continue
                if new in kwargs or positions.get(new, len(args)) < len(args):
                    raise TypeError(f"{where}: got {new} both as {new} and as the deprecated {old}; pass {new} only")
                warnings.warn(f"{where}: the keyword {old}= is deprecated and will stop working in the next "
                              f"release; pass {new}= (or pass it by position)", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)
        return wrapper
    return decorate

