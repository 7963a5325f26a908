"""The settings of one fine-tuning run, checked once before anything is loaded or written."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nc_audit.core.errors import InputError
from nc_audit.models.spec import ModelSpec
from nc_audit.train.ranges import FINETUNE_RANGES
from nc_audit.train.regularizer import Head, RegularizerForm, Target

#: Settings a resumed run must share with the run it continues (anything else would not be a continuation).
RESUME_KEYS: tuple[str, ...] = (
    "data",
    "features",
    "cma_weight",
    "mir_weight",
    "hdr_weight",
    "lr",
    "batch_size",
    "freeze_body",
    "seed",
    "train_samples_per_class",
    "head",
    "adapter_hidden",
    "loss_shards",
    "label_smoothing",
    "regularizer_target",
    "regularizer_head",
)
#: Settings added after runs were first recorded: left out of the recorded settings while at their default,
#: so a run recorded before they existed resumes as before.
OMITTED_AT_DEFAULT: dict[str, object] = {"label_smoothing": 0.0}
#: Settings of the MIR/HDR regulariser: recorded only while it is on (a run without it resumes as before,
#: and a run recorded before its forms existed, which used the ``max`` form, is not resumed as ``nc``).
REGULARIZER_KEYS = ("regularizer_target", "regularizer_head")


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything `nc-audit finetune` needs; the CLI fills it from its options.

    Exactly one of ``data`` (a dataset spec: built-in name or .npz/.h5 file of inputs) and ``features``
    (an HDF5 feature dump: an adapter and a head are trained on the cached features) is set.
    ``checkpoint`` is required with ``data``; with ``features`` it is optional and only supplies the
    initial head (else the dump's /head is used). ``loss_shards`` = S computes each batch's loss on S
    strided shards and sums them weighted by shard size, exactly as S DistributedDataParallel ranks do;
    it reproduces a torchrun run on one process (under torchrun the number of ranks takes its place).
    """

    out: Path
    cma_weight: float
    checkpoint: Path | None = None
    data: str | None = None
    features: Path | None = None
    anchors: Path | None = None
    mir_weight: float = 0.0
    hdr_weight: float = 0.0
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    freeze_body: bool = False
    seed: int = 0
    resume: bool = False
    model: str | None = None
    model_args: tuple[str, ...] = ()  # KEY=VALUE arguments of ``model`` (recorded with it)
    head: str | None = None
    train_samples_per_class: int | None = None
    adapter_hidden: int | None = None
    loss_shards: int = 1
    label_smoothing: float = 0.0
    regularizer_target: Target = "nc"
    regularizer_head: Head = "detached"
    device: str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def regularizer(self) -> RegularizerForm:
        """The MIR/HDR regulariser's weights and form (nc_audit.train.regularizer)."""
        return RegularizerForm(
            self.mir_weight, self.hdr_weight, self.regularizer_target, self.regularizer_head
        )

    def validate(self) -> None:
        """Raise InputError (one line) for any setting outside its range or any conflicting pair; runs
        on construction, so a FinetuneConfig that exists is valid (every range: nc_audit.train.ranges)."""
        for name, allowed in FINETUNE_RANGES.items():
            allowed.check(getattr(self, name))
        self.regularizer.validate()
        if (self.data is None) == (self.features is None):
            raise InputError("pass exactly one of --data NAME|PATH (train the model) or --features DUMP")
        if self.data is not None and self.checkpoint is None:
            raise InputError("--data needs a CHECKPOINT to fine-tune")
        ModelSpec(self.model, self.model_args, self.head, self.device)  # --model-arg parses, has its --model
        if self.features is not None and self.model is not None:
            raise InputError("--model applies to --data runs; --features trains nc-audit's own adapter")
        if self.adapter_hidden is not None and self.features is None:
            raise InputError("--adapter-hidden applies to --features runs only")

    @property
    def model_spec(self) -> ModelSpec:
        """The model to fine-tune: ``model``, ``model_args``, ``head`` and ``device`` as one value."""
        return ModelSpec(self.model, self.model_args, self.head, self.device)

    def resume_settings(self) -> dict[str, Any]:
        """The settings a checkpoint records and a resumed run must repeat (plain data)."""
        plain = asdict(self)
        return {
            key: str(plain[key]) if isinstance(plain[key], Path) else plain[key]
            for key in RESUME_KEYS
            if not (key in OMITTED_AT_DEFAULT and plain[key] == OMITTED_AT_DEFAULT[key])
            and not (key in REGULARIZER_KEYS and not self.regularizer.active)
        }
