"""`nc-audit track`: measure a whole trajectory (or read a monitor's .jsonl), plot it, gate it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nc_audit.cli.common import (
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
    Gate,
    GateOpt,
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
from nc_audit.core.errors import InputError

Opt = typer.Option


@cli_errors
def track_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            metavar="CHECKPOINT|DIR|RUN.jsonl",
            help="Checkpoints, folders of checkpoints, dumps with /head, or a monitor's .jsonl file.",
            show_default=False,
        ),
    ],
    data: DataOpt = None,
    split: SplitOpt = None,
    means_split: MeansSplitOpt = None,
    head: HeadOpt = None,
    pool: PoolOpt = None,
    model: ModelOpt = None,
    model_arg: ModelArgOpt = None,
    cache_dir: CacheDirOpt = None,
    plot: Annotated[
        Path | None,
        Opt(
            metavar="PATH",
            help="Write a PNG: every metric against step, one panel per scale, NC targets dashed.",
        ),
    ] = None,
    output_format: FormatOpt = None,
    json_path: JsonOpt = None,
    markdown_path: MarkdownOpt = None,
    junit_path: JunitOpt = None,
    html_path: HtmlOpt = None,
    fail_on: FailOnOpt = None,
    baseline: BaselineOpt = None,
    tolerance: ToleranceOpt = None,
    gate: GateOpt = Gate.last,
    device: DeviceOpt = None,
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
    layers_plot: Annotated[
        Path | None,
        Opt(
            metavar="PATH",
            help="With --layers: write a PNG heat map, layer × checkpoint, of --layers-metric (log colour "
            "scale for nc1, nc1_cdnv, hdr).",
        ),
    ] = None,
    layers_metric: Annotated[
        str,
        Opt(
            metavar="METRIC",
            help="With --layers: the layer metric of the layer × checkpoint table (console, Markdown, HTML) "
            "and of the --layers-plot heat map (nc1, nc1_cdnv, nc2_equinorm_means, nc2_equiangular_means, "
            "nc2_maxangle_means, h_means, h_head, mi, mir, hdr).",
        ),
    ] = "nc1",
) -> None:
    """Measure every checkpoint of a training run, in step order; batched metrics, a table, a plot, gates.

    Steps come from the checkpoints, else from their names (epoch_4.pt is step 4). --gate last (the
    default) holds only the last checkpoint to --fail-on and --baseline: an untrained first epoch does
    not fail a CI job. Under GitHub Actions each checkpoint's report is printed in a collapsed group.

    Exit codes: 0 all checks passed, 1 a check or baseline comparison failed, 2 bad usage or bad input.
    """
    from nc_audit.io.data.stream_spec import compose
    from nc_audit.io.plan.outputs import plan_outputs
    from nc_audit.io.plan.preflight import data_file

    if task.value != "next-token":  # a streamed source's arguments travel in its spec
        data = compose(data, data_arg, workers=workers, text_column=text_column, label_column=label_column)

    settings = resolve_settings(
        fail_on,
        baseline,
        tolerance,
        output_format,
        device.value if device else None,
    )
    outputs = {
        "--json": json_path, "--markdown": markdown_path, "--junit": junit_path, "--plot": plot, "--html": html_path,
        "--layers-plot": layers_plot,
    }  # fmt: skip
    from nc_audit.report.model import LAYER_METRICS

    if layers_metric not in LAYER_METRICS:
        raise InputError(f"--layers-metric {layers_metric}: expected one of {', '.join(LAYER_METRICS)}")
    if layers_plot is not None:
        from nc_audit.report.formats.layers_plot_out import LayersPlotFormat
        from nc_audit.report.formats.registry import register

        if not layers:
            raise InputError("--layers-plot draws the layers of --layers all|NAME,...; give --layers too")
        register(LayersPlotFormat(layers_metric))
    if len(inputs) == 1 and inputs[0].suffix.lower() == ".jsonl":
        from nc_audit.gating.recorded import gate_run
        from nc_audit.measurement.jsonl import read_trajectory_jsonl
        from nc_audit.report.model import Trajectory

        plan_outputs(outputs, [inputs[0], settings.baseline_path], step_summary=True)
        records = Trajectory.from_records(read_trajectory_jsonl(inputs[0]), str(inputs[0]))
        if not records and (settings.rules or settings.baseline is not None):
            raise InputError(f"{inputs[0]}: the trajectory holds no records: nothing to gate")
        trajectory = gate_run(  # no gates given: the run's own checks (gating/recorded.py)
            records, settings.rules, settings.baseline, settings.tolerance, gate.value, str(inputs[0])
        )
    else:
        next_token = task == Task.next_token
        if next_token:  # causal LM folders on one corpus (nc_audit.measurement.next_token_trajectory)
            from nc_audit.measurement.next_token_folders import language_model_folders

            read = language_model_folders(inputs)
        else:
            from nc_audit.io.hdf5.guard import external_data_allowed
            from nc_audit.measurement.discover import check_trajectory_inputs, discover

            # every file the run reads, checked without torch
            with external_data_allowed(allow_external_data):
                read = check_trajectory_inputs(discover(inputs), split, with_data=data is not None)
        plan_outputs(
            outputs, [*read, settings.baseline_path, data_file(data)], model=model, step_summary=True
        )
        from nc_audit.cli.progress import make_tracker
        from nc_audit.measurement.options import MeasureOptions, layer_names
        from nc_audit.measurement.trajectory import measure_trajectory

        with make_tracker(quiet) as tracker:
            options = MeasureOptions(
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
                allow_external_data=allow_external_data,
                fail_on=settings.fail_on,
                baseline=settings.baseline_path,
                tolerance=settings.tolerance,
                task=task.value,
                context=context,
                text_column=text_column,
                layers=layer_names(layers),
            )
            if next_token:  # causal LM folders on one corpus, gated by the same one gate
                from nc_audit.measurement.next_token_trajectory import measure_next_token_trajectory

                trajectory = measure_next_token_trajectory(inputs, options, tracker, gate=gate.value)
            else:
                trajectory = measure_trajectory(
                    inputs, options, tracker, gate=gate.value
                )  # measured and gated
    files = {
        "json": json_path,
        "markdown": markdown_path,
        "junit": junit_path,
        "plot": plot,
        "html": html_path,
        "layers-plot": layers_plot,
    }
    from dataclasses import replace

    trajectory = replace(trajectory, layers_metric=layers_metric)  # the metric of the layers tables
    emit_results(trajectory, settings.output_format, files)
    exit_if_failed(trajectory.failed)
