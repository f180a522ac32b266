"""Command line: parses arguments and delegates; no logic here.

Exit codes: 0 when a run completed (a diverging run is data, not an error), 2 for bad input (one
line on stderr naming the field, the value and what is allowed), 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import sys

from pinnlab.errors import PinnlabError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other pinnlab error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pinnlab", description="Sweeps and diagnostics for networks trained on derivative losses."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train one configuration and report its outcome")
    run.add_argument("config", metavar="CONFIG_OR_PRESET", help="a YAML file or a preset name (see `pinnlab presets`)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry by dotted path, e.g. --set model.width=20 (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result summary as one JSON object")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")

    sub.add_parser("presets", help="list the shipped presets")
    return parser


def _cmd_run(args) -> int:
    from pinnlab.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from pinnlab.training import ProgressBar, Trainer

    callbacks = [] if args.quiet else [ProgressBar(desc=cfg.name or str(args.config))]
    result = Trainer(cfg, callbacks).fit()
    summary = result.summary()
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


def _print_summary(s: dict) -> None:
    keys = [
        "outcome",
        "reason",
        "steps_run",
        "steps_budget",
        "nan_onset_step",
        "first_nonfinite",
        "final_loss",
        "weight_norm_initial",
        "weight_norm_final",
        "rel_l2_error",
        "heldout_ratio",
        "wall_seconds",
    ]
    width = max(map(len, keys))
    for k in keys:
        v = s[k]
        text = f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else str(v))
        print(f"{k:<{width}}  {text}")
    for w in s["warnings"]:
        print(f"warning: {w}")


def _cmd_presets(args) -> int:
    from pinnlab.config import preset_names

    print("\n".join(preset_names()))
    return 0


COMMANDS = {"run": _cmd_run, "presets": _cmd_presets}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except PinnlabError as exc:
        print(f"pinnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pinnlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
