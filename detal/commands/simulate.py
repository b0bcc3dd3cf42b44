"""``detal simulate``: active learning against random sampling on a fully labeled dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detal.config import load_config
from detal.errors import ConfigError


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate active learning vs random on a fully labeled dataset",
        description=(
            "For each arm and seed, run a real detal project (init, then cycle and import, "
            "repeated) on a fully labeled dataset (Ultralytics data.yaml), with the ground truth "
            "as the annotator. An arm is a strategy, run without self-training, or STRATEGY+st, "
            "the same with the config's self_training block switched on; so `random` is always "
            "plain random. Projects live in runs/simulate/NAME/<arm>/seed-<k>/; "
            "results.csv, curves.png and summary.md are written beside them. Rerun the same "
            "command to resume after an interruption."
        ),
    )
    p.add_argument("config", metavar="CONFIG", help="YAML config (e.g. configs/digits.yaml)")
    p.add_argument("--strategies", metavar="ARMS",
                   help="comma list of arms, e.g. random,random+st,hybrid,hybrid+st,hold (default: the "
                   "config's strategy, with +st when its self_training is enabled, then plain random)")
    p.add_argument("--seeds", default="0", help="comma list of seeds (default: 0)")
    p.add_argument("--name", help="run name (default: the config's file name)")
    p.add_argument("--data", metavar="DATA_YAML", help="dataset (default: the config's `data`)")
    p.add_argument("--runs", default="runs/simulate", help="parent folder of the run (default: runs/simulate)")
    p.add_argument("--bundles", action="store_true",
                   help="also write each batch's vendor bundle zip (off: it copies the batch's images)")
    p.add_argument("--train-cache", metavar="DIR",
                   help="reuse trainings with identical inputs from this folder (default: NAME/train-cache; "
                   "share one folder between runs on the same data, e.g. runs/simulate/train-cache)")
    p.add_argument("--no-train-cache", action="store_true", help="train every cycle, reuse nothing")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run N projects at once, each in its own process (default 1). On the CPU, Ultralytics "
                   "trains with cpu_count - 1 threads, one on 2 cores: there --jobs 2 uses both. The figures "
                   "do not change.")
    p.add_argument(
        "--set", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
        help="override one config key; repeatable",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    from detal.simulate import default_arms, simulate

    strategies = _csv(args.strategies) if args.strategies is not None else default_arms(cfg)
    try:
        seeds = [int(s) for s in _csv(args.seeds)]
    except ValueError:
        raise ConfigError(f"--seeds must be a comma list of integers, got {args.seeds!r}") from None
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    name = args.name or Path(args.config).stem
    out = Path(args.runs) / name

    from detal.adapter import make_adapter  # imports ultralytics lazily, when it builds the adapter

    simulate(
        cfg,
        make_adapter,
        strategies=strategies,
        seeds=seeds,
        out_dir=out,
        data=args.data,
        write_bundles=args.bundles,
        train_cache=None if args.no_train_cache else Path(args.train_cache or out / "train-cache"),
        jobs=args.jobs,
    )
    summary = out / "summary.md"
    if summary.is_file():
        sys.stdout.write(summary.read_text(encoding="utf-8"))
    print(f"\nresults: {out / 'results.csv'}\ncurves:  {out / 'curves.png'}\nsummary: {summary}")
    return 0
