"""Watch what a stretch of torch code does on the device, on CPU as well as on CUDA (shared by the tests).

:class:`DeviceWatch` records, inside the calls it wraps (on whatever thread they run):

- *host reads*: every operation that makes the host wait for a device value. On CUDA each one blocks
  until every queued kernel has run and copies device → host; on CPU they cost nothing, but they are the
  same Python and ATen calls, so counting them on CPU catches the code that would stall a GPU. Seen at
  the ATen level through a ``TorchDispatchMode``: ``_local_scalar_dense`` (``.item()``, ``int()``,
  ``bool()``, ``float()`` of a tensor), ops whose output size depends on the data (``nonzero``,
  ``unique*``, ``masked_select``, ``bincount`` — it reads the largest label on CUDA —,
  ``repeat_interleave`` without ``output_size``, indexing with a boolean mask) and copies from a device
  to the CPU; and, by patching ``torch.Tensor``, ``.tolist()`` and ``.numpy()``, which read memory
  without dispatching anything on CPU.
- *GEMMs*: every matrix product (mm, addmm, bmm, ...) with its operands' dtypes, for the dtype rules.

The uploads of a block's rows and labels (CPU → device) are not host reads and are not recorded.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: ATen ops that read a device value back to the host (see the module docstring).
HOST_READ_OPS = frozenset(
    {
        "_local_scalar_dense",
        "nonzero",
        "unique_consecutive",
        "_unique",
        "_unique2",
        "unique_dim",
        "masked_select",
        "bincount",
    }
)
GEMM_OPS = frozenset(
    {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "vdot", "_addmm_activation"}
)
INDEX_OPS = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)


@dataclass
class DeviceWatch:
    """Host reads and GEMMs made inside calls wrapped by :meth:`wrap` (thread-safe enough: list appends)."""

    host_reads: list[str] = field(default_factory=list)
    gemms: list[tuple[str, tuple[torch.dtype, ...]]] = field(default_factory=list)
    calls: int = 0
    _local: threading.local = field(default_factory=threading.local)

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, watched while it runs (its thread only)."""

        @functools.wraps(function)
        def watched(*args: Any, **kwargs: Any) -> Any:
            with self.watching():
                return function(*args, **kwargs)

        return watched

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch this thread's torch calls for the duration."""
        self.calls += 1
        outer = getattr(self._local, "active", False)
        self._local.active = True
        try:
            with _Recorder(self):
                yield
        finally:
            self._local.active = outer

    @property
    def active(self) -> bool:
        return getattr(self._local, "active", False)

    def record_dispatch(self, name: str, args: tuple, kwargs: dict) -> None:
        if name in HOST_READ_OPS:
            self.host_reads.append(name)
        elif name == "repeat_interleave" and kwargs.get("output_size") is None:
            self.host_reads.append("repeat_interleave without output_size")
        elif name in INDEX_OPS and any(t.dtype == torch.bool for t in _tensors(args[1:2])):
            self.host_reads.append(f"{name} with a boolean mask")
        elif name in ("_to_copy", "copy_"):
            source = args[1] if name == "copy_" else args[0]
            target = args[0].device if name == "copy_" else kwargs.get("device")
            if source.device.type != "cpu" and target is not None and torch.device(target).type == "cpu":
                self.host_reads.append(f"{name} device → cpu")
        if name in GEMM_OPS:
            self.gemms.append((name, tuple(t.dtype for t in _tensors(list(args)))))


class _Recorder(TorchDispatchMode):
    def __init__(self, watch: DeviceWatch) -> None:
        super().__init__()
        self.watch = watch

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        self.watch.record_dispatch(func._overloadpacket.__name__, args, kwargs)
        return func(*args, **kwargs)


@contextmanager
def watch_methods(monkeypatch: pytest.MonkeyPatch, targets: list[tuple[type, str]]) -> Iterator[DeviceWatch]:
    """A DeviceWatch over every call of the given methods (class, name), with ``.tolist()`` and
    ``.numpy()`` of tensors counted as host reads while one of them runs."""
    watch = DeviceWatch()
    for owner, name in targets:
        monkeypatch.setattr(owner, name, watch.wrap(getattr(owner, name)))
    for name in ("tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def patched(
            self: torch.Tensor, *args: Any, _name: str = name, _original: Any = original, **kw: Any
        ) -> Any:
            if watch.active:
                watch.host_reads.append(f".{_name}()")
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, patched)
    yield watch
