"""`nc-audit measure`: one checkpoint's report, rendered and gated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    Estimator,
    cli_errors,
    emit_results,
    exit_if_failed,
)
from nc_audit.cli.gating import resolve_settings
from nc_audit.cli.options import (
    AllowExternalOpt,
    BaselineOpt,
    CacheDirOpt,
    ChunkRowsOpt,
    ClassRoute,
    ClassRouteOpt,
    ContextOpt,
    DataArgOpt,
    DataOpt,
    DecisionSamplesOpt,
    DeviceOpt,
    FailOnOpt,
    FormatOpt,
    HeadOpt,
    HtmlOpt,
    JsonOpt,
    JunitOpt,
    LabelColumnOpt,
    LayersOpt,
    MarkdownOpt,
    MeansSplitOpt,
    MinClassSamplesOpt,
    ModelArgOpt,
    ModelOpt,
    PoolOpt,
    QuietOpt,
    SplitOpt,
    Task,
    TaskOpt,
    TextColumnOpt,
    ToleranceOpt,
    WorkersOpt,
)
from nc_audit.cli.pool import head_with_pool

Opt = typer.Option


@cli_errors
def measure_command(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="CHECKPOINT|DUMP",
            help="Checkpoint (.pt/.pth/.bin/.ckpt/.safetensors), a Hugging Face save_pretrained folder, or a dump (.h5) that holds /head.",
            show_default=False,
        ),
    ],
    features: Annotated[
        Path | None,
        Opt(
            "--features",
            "-f",
            metavar="DUMP",
            help="HDF5 feature dump (/features + /labels, or split groups).",
        ),
    ] = None,
    data: DataOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    cache_dir: CacheDirOpt = None,
    split: SplitOpt = None,
    means_split: MeansSplitOpt = None,
    head: HeadOpt = None,
    pool: PoolOpt = None,
    output_format: FormatOpt = None,
    json_path: JsonOpt = None,
    markdown_path: MarkdownOpt = None,
    junit_path: JunitOpt = None,
    html_path: HtmlOpt = None,
    fail_on: FailOnOpt = None,
    baseline: BaselineOpt = None,
    tolerance: ToleranceOpt = None,
    device: DeviceOpt = None,
    sample_level: Annotated[
        bool,
        Opt(
            "--sample-level",
            help="Also the sample-level metrics (h_samples, h_labels, mi_samples, mir_samples, hdr_samples, mi_samples_onehot) by exact structured routes, never N×N matrices.",
        ),
    ] = False,
    estimator: Annotated[
        Estimator,
        Opt(
            metavar="[auto|exact|slq]",
            help="Sample-level joint entropies: auto (exact where a route fits, else SLQ), exact, or slq (stochastic Lanczos quadrature with a 95% interval).",
        ),
    ] = Estimator.auto,
    chunk_rows: ChunkRowsOpt = None,
    decision_samples: DecisionSamplesOpt = None,
    class_route: ClassRouteOpt = ClassRoute.auto,
    min_class_samples: MinClassSamplesOpt = 1,
    quiet: QuietOpt = False,
    allow_external_data: AllowExternalOpt = False,
    task: TaskOpt = Task.classification,
    context: ContextOpt = None,
    text_column: TextColumnOpt = "text",
    data_arg: DataArgOpt = None,
    workers: WorkersOpt = 0,
    label_column: LabelColumnOpt = None,
    layers: LayersOpt = None,
) -> None:
    """Report how close a checkpoint's last layer is to Neural Collapse, with matrix-information metrics.

    Exit codes: 0 all checks passed, 1 a check or baseline comparison failed, 2 bad usage or bad input.
    """
    from nc_audit.io.data.stream_spec import compose
    from nc_audit.io.hdf5.guard import external_data_allowed
    from nc_audit.io.plan.outputs import plan_outputs
    from nc_audit.io.plan.preflight import check_measure_inputs, data_file

    if task.value != "next-token":  # a streamed source's arguments travel in its spec
        data = compose(data, data_arg, workers=workers, text_column=text_column, label_column=label_column)

    settings = resolve_settings(
        fail_on,
        baseline,
        tolerance,
        output_format,
        device.value if device else None,
    )
    plan_outputs(  # no output may replace an input or another output
        {"--json": json_path, "--markdown": markdown_path, "--junit": junit_path, "--html": html_path},
        [source, features, settings.baseline_path, data_file(data)],
        model=model,
        step_summary=True,
    )
    with external_data_allowed(allow_external_data):
        check_measure_inputs(source, features, split)  # bad files fail here, before torch is loaded
    from nc_audit.cli.progress import make_tracker
    from nc_audit.distributed import is_main_process
    from nc_audit.measurement.api import measure
    from nc_audit.measurement.options import MeasureOptions, layer_names

    main_rank = is_main_process()  # under torchrun every rank measures its rows; rank 0 reports
    with make_tracker(quiet, enabled=main_rank) as tracker:
        options = MeasureOptions(
            features=features,
            data=data,
            split=split,
            means_split=means_split,
            head=head_with_pool(head, pool),
            model=model,
            model_args=tuple(model_arg or ()),
            cache_dir=cache_dir or settings.cache_dir,
            device=settings.device,
            chunk_rows=chunk_rows,
            decision_samples=decision_samples,
            class_route=class_route.value,
            min_class_samples=min_class_samples,
            sample_level=sample_level,
            estimator=estimator.value,
            allow_external_data=allow_external_data,
            task=task.value,
            context=context,
            text_column=text_column,
            fail_on=settings.fail_on,
            baseline=settings.baseline_path,
            tolerance=settings.tolerance,
            layers=layer_names(layers),
        )
        report = measure(source, options=options, tracker=tracker)  # measured and gated
    if not main_rank:
        raise typer.Exit(EXIT_OK if report.passed else EXIT_CHECK_FAILED)
    from nc_audit.report.model import Trajectory

    files = {"json": json_path, "markdown": markdown_path, "junit": junit_path, "html": html_path}
    emit_results(Trajectory.of(report), settings.output_format, files)
    exit_if_failed(Trajectory.of(report).failed)
