"""The `sidforge` command line: the same library calls the Dagster assets make, without Dagster."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _lake_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lake", default=None, help="lake root (default: $SIDFORGE_LAKE or ./data/lake)")


def _parser() -> argparse.ArgumentParser:
    from lake.formats import FORMATS
    from lake.sources.synthetic import SCALES

    parser = argparse.ArgumentParser(prog="sidforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write synthetic AL-GR-format data")
    gen.add_argument("--scale", choices=list(SCALES), default="tiny")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", default="./data/raw", help="output folder (default ./data/raw)")

    ing = sub.add_parser("ingest", help="ingest files or folders into the lake")
    ing.add_argument("paths", nargs="+")
    ing.add_argument("--format", required=True, choices=list(FORMATS), dest="fmt")
    _lake_arg(ing)
    ing.add_argument("--ds", default=None, help="partition day YYYY-MM-DD (events: required day of every "
                                                "event; AL-GR stages: day of stage 1)")
    ing.add_argument("--engine", choices=["polars", "spark"], default="polars")
    ing.add_argument("--spark-master", default=None, help="Spark master URL (default local[2])")
    ing.add_argument("--trust-pickle", action="store_true", help="allow the pickled itemEncID of an npz file")
    ing.add_argument("--model", default=None, help="model name for precomputed embeddings")
    ing.add_argument("--build-id", default=None, help="build id for imported AL-GR semantic IDs")
    ing.add_argument("--replace-partition", action="store_true",
                     help="also remove every other row of the partitions written (and of --ds), not only the rows "
                          "these inputs wrote before")
    ing.add_argument("--json", action="store_true", help="print the report as JSON")

    tab = sub.add_parser("tables", help="list the lake's tables with version, rows and size")
    _lake_arg(tab)

    pub = sub.add_parser("publish", help="publish sharded GR training data for a SID build")
    _lake_arg(pub)
    pub.add_argument("--build", default=None, help="SID build (default: the published build)")
    pub.add_argument("--source", choices=["user_sequences", "interactions"], default="user_sequences")
    pub.add_argument("--dataset", default="gr")
    pub.add_argument("--rows-per-shard", type=int, default=500_000)
    pub.add_argument("--test-day", action="append", default=[], help="interactions: days whose examples are test")
    pub.add_argument("--engine", choices=["polars", "spark"], default="polars")
    pub.add_argument("--spark-master", default=None)

    exp = sub.add_parser("export", help="export for FORGE's tools: AL-GR TSV, item→SID CSV, SID→items")
    _lake_arg(exp)
    exp.add_argument("--format", required=True, choices=["algr-tsv", "item-sid-csv", "sid-items"], dest="fmt")
    exp.add_argument("--out", required=True)
    exp.add_argument("--build", default=None, help="SID build (default: the published build); algr-tsv: the "
                     "latest published dataset of this build")
    exp.add_argument("--version-path", default=None, help="algr-tsv: a published version (default: the latest)")
    exp.add_argument("--token-stride", type=int, default=8192,
                     help="tokens of level l start at l x STRIDE (default 8192, AL-GR's and FORGE's layout); a level "
                          "larger than the stride is refused")

    rep = sub.add_parser("report", help="print a SID build's metrics and the path of its HTML report")
    rep.add_argument("build_id", nargs="?", default=None, help="build id (default: the published build)")
    _lake_arg(rep)

    vac = sub.add_parser("vacuum", help="finish or clean up killed runs; remove files no live version needs")
    _lake_arg(vac)
    vac.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    vac.add_argument("--retention-hours", type=float, default=None,
                     help="keep files that a version of the last N hours still references (default 168)")

    demo = sub.add_parser("demo", help="generate demo data and ingest it through Dagster")
    demo.add_argument("--scale", choices=list(SCALES), default="demo")
    demo.add_argument("--seed", type=int, default=0)
    _lake_arg(demo)
    demo.add_argument("--raw", default="./data/raw")
    return parser


def _print_tables(lake) -> None:
    frame = lake.tables()
    print(f"lake: {lake.root}")
    print(f"{'table':<20}{'version':>8}{'rows':>12}{'files':>7}{'bytes':>14}  partitioned by")
    for row in frame.iter_rows(named=True):
        version = "-" if row["version"] is None else str(row["version"])
        print(f"{row['table']:<20}{version:>8}{row['rows']:>12,}{row['files']:>7}{row['bytes']:>14,}  "
              f"{row['partitioned_by']}")


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lake import Lake
    from lake.ingest import ingest

    lake = Lake(args.lake)
    with tqdm(desc=f"ingest {args.fmt}", unit=" rec", unit_scale=True, file=sys.stderr,
              disable=not sys.stderr.isatty()) as bar:
        report = ingest(lake, args.paths, args.fmt, ds=args.ds, engine=args.engine, model=args.model,
                        build_id=args.build_id, trust_pickle=args.trust_pickle, spark_master=args.spark_master,
                        replace_partition=args.replace_partition, progress=bar.update)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(f"{report.table}: read {report.rows_read:,}, written {report.rows_written:,}, "
              f"quarantined {report.rows_quarantined:,} ({report.engine}, {report.seconds:.2f}s, "
              f"version {report.version}, run {report.run_id})")
        whole = "; ".join("partition " + ",".join(f"{k}={v}" for k, v in p.items()) for p in report.replaced_partitions)
        print(f"  replaced {report.rows_replaced:,} rows " + (f"({whole}, replaced whole)" if whole else
                                                              "that these inputs wrote before"))
        for path in report.empty_inputs:
            print(f"  {path}: no valid rows; what it wrote before is kept (--replace-partition removes it)")
        if report.rows_quarantined:
            print(f"  see: Lake({lake.root!r}).scan('quarantine').filter(pl.col('run_id') == {report.run_id!r})")
    return 0


def _export(lake, args: argparse.Namespace) -> int:
    import polars as pl

    from lake.exports import export_algr_tsv, export_item_sid_csv, export_sid_items

    if args.fmt == "algr-tsv":
        versions = lake.scan("published_datasets").sort("created_at").collect()
        if args.build:
            versions = versions.filter(pl.col("build_id") == args.build)
        path = args.version_path or (versions["path"][-1] if versions.height else None)
        if not path:
            which = f" of build {args.build!r}" if args.build else ""
            print(f"sidforge: error: no published dataset{which}; run `sidforge publish` first", file=sys.stderr)
            return 2
        written = export_algr_tsv(path, args.out, args.token_stride)
    else:
        build = args.build or lake.published_build()
        if not build:
            print("sidforge: error: no published SID build; pass --build BUILD_ID", file=sys.stderr)
            return 2
        if not lake.scan("item_sids").filter(pl.col("build_id") == build).head(1).collect().height:
            print(f"sidforge: error: --build {build!r}: no item SIDs for this build (see `sidforge tables`)",
                  file=sys.stderr)
            return 2
        export = export_item_sid_csv if args.fmt == "item-sid-csv" else export_sid_items
        written = [export(lake, build, args.out, args.token_stride)]
    for path in written:
        print(f"wrote {path}")
    manifest = Path(args.out) / f"{args.fmt}.manifest.json"
    print(f"token layout: C{{code + level * {args.token_stride}}}; see {manifest}")
    return 0


def _vacuum(lake, args: argparse.Namespace) -> int:
    from lake.maintenance import DEFAULT_RETENTION_HOURS, vacuum

    hours = DEFAULT_RETENTION_HOURS if args.retention_hours is None else args.retention_hours
    if hours < 0:
        print("sidforge: error: --retention-hours must be 0 or more", file=sys.stderr)
        return 2
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
    import polars as pl

    from quality.report import metrics_table

    build_id = build_id or lake.published_build()
    rows = lake.scan("sid_builds").filter(pl.col("build_id") == build_id).collect() if build_id else None
    if rows is None or not rows.height:
        print(f"sidforge: error: no SID build {build_id!r} in {lake.root}", file=sys.stderr)
        return 2
    build = rows.row(0, named=True)
    metrics = json.loads(build["metrics"] or "{}")
    print(f"build {build_id}  method {build['method']}  sizes {build['sizes']}  status {build['status']}")
    width = max((len(k) for k, _ in metrics_table(metrics)), default=10)
    for key, value in metrics_table(metrics):
        print(f"  {key:<{width}}  {value}")
    print(f"report: {metrics.get('report') or 'not written yet (run the sid_build_quality check)'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sidforge` console script."""
    args = _parser().parse_args(argv)
    from lake import Lake
    from lake.lake import ConcurrentWriteError
    from lake.sources.lines import SourceError

    try:
        if args.command == "generate":
            from lake.sources.synthetic import generate

            manifest = generate(args.out, args.scale, args.seed)
            print(f"wrote {args.scale} data (seed {args.seed}) to {args.out}: {json.dumps(manifest['counts'])}")
        elif args.command == "ingest":
            return _ingest(args)
        elif args.command == "tables":
            _print_tables(Lake(args.lake))
        elif args.command == "publish":
            from lake.publishing import publish_training_data

            report = publish_training_data(Lake(args.lake), build_id=args.build, source=args.source,
                                           dataset=args.dataset, rows_per_shard=args.rows_per_shard,
                                           test_days=args.test_day, engine=args.engine,
                                           spark_master=args.spark_master)
            manifest = report.published.manifest
            print(f"published {manifest['dataset']} version {manifest['version']} (build {manifest['sid_build']}): "
                  f"{report.examples:,} examples in {len(manifest['shards'])} shards at {report.published.path}; "
                  f"{report.skipped_without_target_sid:,} without a target SID, "
                  f"{report.history_unknown_items:,} history items without a SID")
        elif args.command == "export":
            return _export(Lake(args.lake), args)
        elif args.command == "vacuum":
            return _vacuum(Lake(args.lake), args)
        elif args.command == "report":
            return _report(Lake(args.lake), args.build_id)
        elif args.command == "demo":
            from pipelines.demo import run_demo, summary

            lake = run_demo(scale=args.scale, seed=args.seed, raw=args.raw, lake_root=args.lake)
            _print_tables(lake)
            print(summary(lake))
            print("\nopen the UI with `make dev` (http://127.0.0.1:3000)")
    except (SourceError, ValueError, FileNotFoundError) as exc:
        print(f"sidforge: error: {exc}", file=sys.stderr)
        return 2
    except ConcurrentWriteError as exc:
        print(f"sidforge: error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
