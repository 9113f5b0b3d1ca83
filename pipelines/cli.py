"""The `sidforge` command line: the same library calls the Dagster assets make, without Dagster."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from lake import storage

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _day(value: str) -> str:
    """An argparse type: a calendar day written YYYY-MM-DD."""
    from lake.catalog import is_day

    if not is_day(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a calendar day in the form YYYY-MM-DD (for example 2025-01-04)"
        )
    return value


def _positive(value: str) -> int:
    """An argparse type: an integer of 1 or more."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of 1 or more")
    return number


def _test_examples(value: str) -> int:
    """An argparse type: a number of probe test examples, at least quality.gr_probe.MIN_TEST_EXAMPLES."""
    from quality.gr_probe import MIN_TEST_EXAMPLES

    number = _positive(value)
    if number < MIN_TEST_EXAMPLES:
        raise argparse.ArgumentTypeError(f"{value!r} is below {MIN_TEST_EXAMPLES}: fewer test examples measure nothing")
    return number


def _hours(value: str) -> float:
    """An argparse type: a number of hours, 0 or more."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of hours of 0 or more")
    return number


def _lake_arg(parser: argparse.ArgumentParser, must_exist: bool = True) -> None:
    parser.add_argument(
        "--lake",
        default=None,
        metavar="DIR",
        help="lake root, a folder or an object-store URI (default: $SIDFORGE_LAKE or ./data/lake)"
        + ("" if must_exist else "; created when missing"),
    )


def _parser() -> argparse.ArgumentParser:
    from ingest.formats import FORMATS
    from ingest.synthetic import SCALES
    from lake.settings import DEFAULT_ENGINE, ENGINES

    parser = argparse.ArgumentParser(prog="sidforge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"sidforge {version('sidforge')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scales = ", ".join(SCALES)

    gen = sub.add_parser("generate", help="write synthetic AL-GR-format data")
    gen.add_argument("--scale", choices=list(SCALES), default="tiny", help=f"how much data: {scales} (default tiny)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0); the same seed gives the same files")
    gen.add_argument("--out", default="./data/raw", metavar="DIR", help="output folder (default ./data/raw)")

    ing = sub.add_parser("ingest", help="ingest files or folders into the lake")
    ing.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="files or folders (searched recursively; .gz, .bz2 and .zst are read transparently)",
    )
    ing.add_argument(
        "--format",
        required=True,
        choices=list(FORMATS),
        dest="fmt",
        help="what the files hold and which table they go to (see docs/ingest.md)",
    )
    _lake_arg(ing, must_exist=False)
    ing.add_argument(
        "--ds",
        default=None,
        type=_day,
        metavar="YYYY-MM-DD",
        help="partition day (events: the day every event must fall on; AL-GR stages: day of stage 1)",
    )
    ing.add_argument(
        "--engine", choices=ENGINES, default=DEFAULT_ENGINE, help="polars on this machine (default) or spark"
    )
    ing.add_argument(
        "--spark-master",
        default=None,
        metavar="URL",
        help="Spark master URL for --engine spark (default $SIDFORGE_SPARK_MASTER or local[2])",
    )
    ing.add_argument("--trust-pickle", action="store_true", help="allow the pickled itemEncID of an npz file")
    ing.add_argument("--model", default=None, help="model name for precomputed embeddings (npz: default npz-<stem>)")
    ing.add_argument(
        "--build-id",
        default=None,
        metavar="ID",
        help="build id for imported AL-GR semantic IDs (default algr-<file stem>)",
    )
    ing.add_argument(
        "--replace-partition",
        nargs="*",
        default=None,
        metavar="PARTITION",
        help="also empty partitions: with no value, every partition written (and --ds), refusing one that holds "
        "under 5%% of the input's rows unless --force; or the partitions named (a day, or col=value)",
    )
    ing.add_argument(
        "--force", action="store_true", help="--replace-partition: empty every partition written, however few rows"
    )
    ing.add_argument(
        "--dedupe-against-table",
        action="store_true",
        help="quarantine input rows whose key the touched partitions already hold (reason: duplicate of existing row)",
    )
    ing.add_argument(
        "--dry-run", action="store_true", help="print the plan (adds, removes per partition) and commit nothing"
    )
    ing.add_argument("--json", action="store_true", help="print the report as JSON")

    tab = sub.add_parser("tables", help="list the lake's tables with version, rows and size")
    _lake_arg(tab)

    pub = sub.add_parser("publish", help="publish sharded GR training data for a SID build")
    _lake_arg(pub)
    pub.add_argument("--build", default=None, metavar="BUILD_ID", help="SID build (default: the published build)")
    pub.add_argument(
        "--source",
        choices=["user_sequences", "interactions"],
        default="user_sequences",
        help="AL-GR samples from user_sequences (default), or each event of interactions with the user's earlier items",
    )
    pub.add_argument("--dataset", default="gr", help="dataset name under <lake>/published/ (default gr)")
    pub.add_argument(
        "--rows-per-shard",
        type=_positive,
        default=500_000,
        metavar="N",
        help="examples per Parquet shard (default 500000)",
    )
    pub.add_argument(
        "--test-day",
        action="append",
        default=[],
        type=_day,
        metavar="YYYY-MM-DD",
        help="--source interactions: a day whose examples form the test split (repeatable)",
    )
    pub.add_argument(
        "--engine", choices=ENGINES, default=DEFAULT_ENGINE, help="polars on this machine (default) or spark"
    )
    pub.add_argument(
        "--spark-master",
        default=None,
        metavar="URL",
        help="Spark master URL for --engine spark (default $SIDFORGE_SPARK_MASTER or local[2])",
    )

    exp = sub.add_parser("export", help="export for FORGE's tools: AL-GR TSV, item→SID CSV, SID→items")
    _lake_arg(exp)
    exp.add_argument(
        "--format",
        required=True,
        choices=["algr-tsv", "item-sid-csv", "sid-items"],
        dest="fmt",
        help="algr-tsv (a published dataset as AL-GR GR data), item-sid-csv (AL-GR Item-SID layout) "
        "or sid-items (each SID and its items)",
    )
    exp.add_argument("--out", required=True, metavar="DIR", help="folder the export is written to")
    exp.add_argument(
        "--build",
        default=None,
        metavar="BUILD_ID",
        help="SID build (default: the published build); algr-tsv: the latest published dataset of this build",
    )
    exp.add_argument("--dataset", default="gr", help="algr-tsv: the published dataset to export (default gr)")
    exp.add_argument(
        "--version-path",
        default=None,
        metavar="PATH",
        help="algr-tsv: a published dataset version folder (default: the latest)",
    )
    exp.add_argument(
        "--token-stride",
        type=_positive,
        default=8192,
        metavar="STRIDE",
        help="tokens of level l start at l x STRIDE (default 8192, AL-GR's and FORGE's layout); a level "
        "larger than the stride is refused",
    )

    rep = sub.add_parser("report", help="print a SID build's metrics and the path of its HTML report")
    rep.add_argument(
        "build_id", nargs="?", default=None, metavar="BUILD_ID", help="build id (default: the published build)"
    )
    _lake_arg(rep)

    prb = sub.add_parser(
        "probe", help="train a small GR model on a build's published data: HR@K beside random SIDs and popularity"
    )
    prb.add_argument(
        "build_id", nargs="?", default=None, metavar="BUILD_ID", help="build id (default: the published build)"
    )
    _lake_arg(prb)
    prb.add_argument("--dataset", default="gr", help="published dataset to train and test on (default gr)")
    prb.add_argument("--epochs", type=_positive, help="training epochs (default: quality.gr_probe.ProbeConfig's)")
    prb.add_argument(
        "--max-examples", type=_test_examples, help="test examples evaluated, 10 or more (default: ProbeConfig's)"
    )
    prb.add_argument(
        "--replace",
        action="store_true",
        help="record these figures as the build's own even when the settings differ from the recorded ones "
        "(without it such a run is kept beside them, under probe_runs)",
    )
    prb.add_argument("--seed", type=int, help="seed of the model, the training order and the random SIDs")
    prb.add_argument("--device", help="cpu or cuda (default cpu)")
    prb.add_argument("--json", action="store_true", help="print the figures as JSON")

    vac = sub.add_parser("vacuum", help="finish or clean up killed runs; remove files no live version needs")
    _lake_arg(vac)
    vac.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    vac.add_argument(
        "--retention-hours",
        type=_hours,
        default=None,
        metavar="HOURS",
        help="keep files that a version of the last HOURS still references (default 168)",
    )

    demo = sub.add_parser("demo", help="generate demo data and run every job through Dagster")
    demo.add_argument("--scale", choices=list(SCALES), default="demo", help=f"{scales} (default demo)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the generated data (default 0)")
    _lake_arg(demo, must_exist=False)
    demo.add_argument("--raw", default="./data/raw", metavar="DIR", help="generated raw files (default ./data/raw)")
    demo.add_argument(
        "--log",
        default="./data/demo.log",
        metavar="FILE",
        help="the full Dagster and library log (default ./data/demo.log)",
    )

    dev = sub.add_parser("dev", help="serve the Dagster UI with the settings `sidforge demo` used")
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    dev.add_argument("--port", type=_positive, default=3000, help="port (default 3000)")
    return parser


class UsageError(ValueError):
    """A command-line value that names an option and what it expects."""


def _existing_lake(root: str | None):
    """The Lake at --lake (a folder or an object-store prefix); a UsageError when nothing is there (read commands
    never create a lake)."""
    from pyarrow.fs import FileType

    from lake import TABLES, Lake

    lake = Lake(root)
    filesystem, path = lake.filesystem()
    if filesystem.get_file_info(path).type == FileType.NotFound and not any(lake.exists(n) for n in TABLES):
        raise UsageError(
            f"--lake {root or lake.root}: no lake at {lake.root}; ingest data first "
            "(`sidforge ingest` or `make demo`) or pass --lake DIR"
        )
    return lake


def _build(lake, build_id: str | None, option: str = "--build") -> str:
    """The given build, checked to exist, or the published build; a UsageError naming the option otherwise."""
    from builds.registry import BuildRegistry

    builds = BuildRegistry(lake).all()
    known = ", ".join(f"{b.build_id} ({b.status})" for b in builds) or "none"
    if build_id is None:
        published = BuildRegistry(lake).published()
        if published is None and not builds:
            raise UsageError(f"no SID build in {lake.root} yet: the nightly_sid_rebuild job builds one (`make demo`)")
        if published is None:
            name = f"pass {option} BUILD_ID" if option.startswith("--") else f"name a {option}"
            raise UsageError(f"no published SID build in {lake.root}; {name} (builds: {known})")
        return published.build_id
    if build_id not in {b.build_id for b in builds}:
        raise UsageError(f"{option} {build_id!r}: no such SID build in {lake.root} (builds: {known})")
    return build_id


@contextmanager
def _removed_if_left_empty(root: str) -> Iterator[None]:
    """A local lake folder this command creates is removed again when the command fails before writing a file."""
    folder = None if storage.is_uri(root) or Path(root).exists() else Path(root)
    try:
        yield
    except BaseException:
        if folder is not None and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _print_tables(lake) -> None:
    frame = lake.tables()
    print(f"lake: {lake.root}")
    print(f"{'table':<20}{'version':>8}{'rows':>12}{'files':>7}{'bytes':>14}  partitioned by")
    for row in frame.iter_rows(named=True):
        version = "-" if row["version"] is None else str(row["version"])
        print(
            f"{row['table']:<20}{version:>8}{row['rows']:>12,}{row['files']:>7}{row['bytes']:>14,}  "
            f"{row['partitioned_by']}"
        )


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ingest.run import ingest
    from ingest.sources.limits import Limits
    from lake import Lake

    lake = Lake(args.lake)
    with (
        _removed_if_left_empty(lake.root),
        tqdm(
            desc=f"ingest {args.fmt}", unit=" rec", unit_scale=True, file=sys.stderr, disable=not sys.stderr.isatty()
        ) as bar,
    ):
        report = ingest(
            lake,
            args.paths,
            args.fmt,
            ds=args.ds,
            engine=args.engine,
            model=args.model,
            build_id=args.build_id,
            trust_pickle=args.trust_pickle,
            spark_master=args.spark_master,
            replace_partition=_replace_choice(args.replace_partition),
            force=args.force,
            dedupe_against_table=args.dedupe_against_table,
            dry_run=args.dry_run,
            progress=bar.update,
            limits=Limits.from_environment(os.environ),
            before_commit=None if args.json else _announce_replacements,
        )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    elif report.dry_run:
        print(
            f"{report.table}: dry run, nothing committed (read {report.rows_read:,}, would write "
            f"{report.rows_written:,}, quarantine {report.rows_quarantined:,})"
        )
        for step in report.plan:
            where = ",".join(f"{k}={v}" for k, v in step["partition"].items()) or "(whole table)"
            print(f"  {where}: add {step['add']:,}, remove {step['remove']:,}")
        _print_existing(report, args.dedupe_against_table)
    else:
        print(
            f"{report.table}: read {report.rows_read:,}, written {report.rows_written:,}, "
            f"quarantined {report.rows_quarantined:,} ({report.engine}, {report.seconds:.2f}s, "
            f"version {report.version}, run {report.run_id})"
        )
        whole = "; ".join("partition " + ",".join(f"{k}={v}" for k, v in p.items()) for p in report.replaced_partitions)
        print(
            f"  replaced {report.rows_replaced:,} rows "
            + (f"({whole}, replaced whole)" if whole else "that these inputs wrote before")
        )
        for path in report.empty_inputs:
            print(f"  {path}: no valid rows; what it wrote before is kept (--replace-partition removes it)")
        _print_existing(report, args.dedupe_against_table)
        if report.rows_quarantined:
            print(f"  see: Lake({lake.root!r}).scan('quarantine').filter(pl.col('run_id') == {report.run_id!r})")
    return 0


def _replace_choice(values: list[str] | None) -> bool | list[str]:
    """--replace-partition: absent (False), bare (True: every partition written), or the partitions named."""
    return False if values is None else values or True


def _announce_replacements(report) -> None:
    """Name the partitions an ingest empties, before its commit."""
    for part in report.replaced_partitions:
        step = next((s for s in report.plan if s["partition"] == part), {"remove": 0})
        where = ",".join(f"{k}={v}" for k, v in part.items())
        print(f"emptying partition {where} ({step['remove']:,} rows) before the commit", file=sys.stderr)


def _print_existing(report, deduped: bool) -> None:
    """Say how many of an ingest's rows the table already held."""
    if deduped:
        print(f"  {report.rows_existing:,} rows already in the table: quarantined as duplicates of existing rows")
    elif report.rows_existing:
        print(
            f"  {report.rows_existing:,} of these rows already exist in the table (same key, another source); "
            "--dedupe-against-table drops them"
        )


def _export(lake, args: argparse.Namespace) -> int:
    import polars as pl

    from publish.exports import export_algr_tsv, export_item_sid_csv, export_sid_items

    if args.fmt == "algr-tsv":
        if args.version_path:
            if args.build:
                raise UsageError("--build and --version-path both pick the dataset for algr-tsv; pass one of them")
            path = args.version_path
        else:
            build = _build(lake, args.build) if args.build else None
            try:
                path = lake.published_dataset(args.dataset, build_id=build)
            except LookupError as exc:
                raise UsageError(str(exc)) from None
        written = export_algr_tsv(path, args.out, args.token_stride)
    else:
        if args.version_path:
            raise UsageError(f"--version-path applies to --format algr-tsv, not {args.fmt}")
        build = _build(lake, args.build)
        if not lake.scan("item_sids").filter(pl.col("build_id") == build).head(1).collect().height:
            raise UsageError(f"--build {build!r}: no item SIDs for this build (see `sidforge tables`)")
        export = export_item_sid_csv if args.fmt == "item-sid-csv" else export_sid_items
        written = [export(lake, build, args.out, args.token_stride)]
    for path in written:
        print(f"wrote {path}")
    manifest = storage.join(storage.normalize(args.out), f"{args.fmt}.manifest.json")
    print(f"token layout: C{{code + level * {args.token_stride}}}; see {manifest}")
    return 0


def _publish(lake, args: argparse.Namespace) -> int:
    from publish.training_data import publish_training_data

    if args.test_day and args.source != "interactions":
        raise UsageError("--test-day applies to --source interactions (AL-GR sequences carry their own split)")
    report = publish_training_data(
        lake,
        build_id=_build(lake, args.build),
        source=args.source,
        dataset=args.dataset,
        rows_per_shard=args.rows_per_shard,
        test_days=args.test_day,
        engine=args.engine,
        spark_master=args.spark_master,
    )
    manifest = report.published.manifest
    print(
        f"published {manifest['dataset']} version {manifest['version']} (build {manifest['sid_build']}): "
        f"{report.examples:,} examples in {len(manifest['shards'])} shards at {report.published.path}; "
        f"{report.skipped_without_target_sid:,} without a target SID, "
        f"{report.history_unknown_items:,} history items without a SID"
    )
    return 0


def _vacuum(lake, args: argparse.Namespace) -> int:
    from lake.maintenance import DEFAULT_RETENTION_HOURS, vacuum

    hours = DEFAULT_RETENTION_HOURS if args.retention_hours is None else args.retention_hours
    report = vacuum(lake, retention_hours=hours, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for run in report.recovered_runs:
        print(f"finished the commits of killed run {run}")
    for name, files in report.table_files.items():
        print(f"{name}: {verb} {len(files)} unreferenced files")
    for folder in report.staging:
        print(f"staging: {verb} {folder}")
    for folder in report.published_versions:
        print(f"published: {verb} unregistered version {folder}")
    print(f"{lake.root}: {verb} {report.removed} files and folders (retention {hours:g} h)")
    return 0


def _report(lake, build_id: str | None) -> int:
    from builds.registry import BuildRegistry
    from quality.report import metrics_table

    build = BuildRegistry(lake).get(_build(lake, build_id, option="BUILD_ID"))
    metrics = build.metrics
    print(f"build {build.build_id}  method {build.method}  sizes {build.sizes}  status {build.status}")
    width = max((len(k) for k, _ in metrics_table(metrics)), default=10)
    for key, value in metrics_table(metrics):
        print(f"  {key:<{width}}  {value}")
    print(f"report: {metrics.get('report') or 'not written yet (run the sid_build_quality check)'}")
    return 0


def _probe(lake, args: argparse.Namespace) -> int:
    from lake.progress import ProgressLines
    from quality.gr_probe import ProbeConfig
    from serving.probe import probe_build

    build_id = _build(lake, args.build_id, option="BUILD_ID")
    given = {"epochs": args.epochs, "max_examples": args.max_examples, "seed": args.seed, "device": args.device}
    config = ProbeConfig(**{k: v for k, v in given.items() if v is not None})
    figures, where = probe_build(
        lake,
        build_id,
        dataset=args.dataset,
        config=config,
        run_id=f"cli-probe-{build_id}",
        replace=args.replace,
        progress=ProgressLines(lambda line: print(line, file=sys.stderr, flush=True)),
    )
    if args.json:
        print(json.dumps({**figures, "recorded_as": where}, indent=2))
        return 0
    print(f"build {build_id}: {figures['probe_test_examples']:,} test examples of {figures['probe_version']}")
    if where != "probe":
        print(f"  other settings than the build's recorded probe: kept beside it as {where} (--replace to overwrite)")
    print(f"  {'':<10}{'probe':>10}{'random SIDs':>14}{'popularity':>12}")
    for key in sorted(k for k in figures if k.startswith("probe_") and k.count("_") == 3):
        name = key.removeprefix("probe_").replace("_at_", "@").upper()
        row = [figures[key], figures[f"{key}_random"], figures[f"{key}_popularity"]]
        print(f"  {name:<10}{row[0]:>10.4f}{row[1]:>14.4f}{row[2]:>12.4f}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from pipelines.demo import run_demo, summary

    lake = run_demo(scale=args.scale, seed=args.seed, raw=args.raw, lake_root=args.lake, log=args.log)
    _print_tables(lake)
    print(summary(lake))
    print(f"\nfull log: {args.log}\nopen the UI with `make dev` (http://127.0.0.1:3000)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sidforge` console script."""
    args = _parser().parse_args(argv)
    from lake.settings import setting

    if hasattr(args, "lake"):
        args.lake = args.lake or setting("SIDFORGE_LAKE", os.environ)
    if hasattr(args, "spark_master"):
        args.spark_master = args.spark_master or setting("SIDFORGE_SPARK_MASTER", os.environ)
    from ingest.sources.lines import SourceError
    from lake.lake import ConcurrentWriteError

    try:
        if args.command == "generate":
            from ingest.synthetic import generate

            manifest = generate(args.out, args.scale, args.seed)
            print(f"wrote {args.scale} data (seed {args.seed}) to {args.out}: {json.dumps(manifest['counts'])}")
        elif args.command == "ingest":
            return _ingest(args)
        elif args.command == "tables":
            _print_tables(_existing_lake(args.lake))
        elif args.command == "publish":
            return _publish(_existing_lake(args.lake), args)
        elif args.command == "export":
            return _export(_existing_lake(args.lake), args)
        elif args.command == "vacuum":
            return _vacuum(_existing_lake(args.lake), args)
        elif args.command == "report":
            return _report(_existing_lake(args.lake), args.build_id)
        elif args.command == "probe":
            return _probe(_existing_lake(args.lake), args)
        elif args.command == "demo":
            return _demo(args)
        elif args.command == "dev":
            from pipelines.dev import serve

            serve(args.host, args.port)
    except (SourceError, ValueError, FileNotFoundError, LookupError) as exc:
        print(f"sidforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ConcurrentWriteError as exc:
        print(f"sidforge {args.command}: error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
