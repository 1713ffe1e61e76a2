"""The ``bind`` command line: one entry point, ``--help`` on every command."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _encoders(args: argparse.Namespace) -> int:
    from .registry import list_encoders

    rows = list_encoders(modality=args.modality)
    if args.json:
        print(json.dumps([{**row.__dict__, "modality": row.modality.value} for row in rows], indent=2))
        return 0
    header = ("name", "modality", "dim", "backend", "offline", "licence")
    table = [header] + [(r.name, r.modality.value, str(r.dim), r.backend, "yes" if r.offline else "no",
                         r.licence if len(r.licence) <= 60 else r.licence[:57] + "...") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _embed(args: argparse.Namespace) -> int:
    from .embed import EmbedResult, embed
    from .io.embeddings import save_embeddings

    result = embed(list(args.inputs), encoder=args.encoder, modality=args.modality, batch_size=args.batch_size,
                   progress=not args.quiet, on_error="skip" if args.skip_bad else "raise")
    if isinstance(result, EmbedResult):
        vectors, kept = result.embeddings, result.indices
        for failure in result.failures:
            print(f"skipped: {failure}", file=sys.stderr)
    else:
        vectors, kept = result, list(range(len(args.inputs)))
    if args.out:
        save_embeddings(args.out, vectors, [args.inputs[i] for i in kept], encoder=args.encoder or "")
        print(f"wrote {len(kept)} embeddings of dim {vectors.shape[1]} to {args.out}", file=sys.stderr)
    else:
        for i, row in zip(kept, vectors.tolist()):
            print(json.dumps({"input": args.inputs[i], "embedding": [round(x, 6) for x in row]}))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import caption_demo

    caption_demo(top_k=args.top_k)
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train.cli import main as train_main

    train_main(["--config", args.recipe, *args.overrides])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bind", description="Bind frozen pretrained experts into one space.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("encoders", help="list the registered experts")
    p.add_argument("--modality", help="only experts of this modality")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_encoders)

    p = commands.add_parser("embed", help="embed files or texts with one expert")
    p.add_argument("inputs", nargs="+", help="file paths (or texts with --modality text)")
    p.add_argument("--encoder", help="expert name (default: the offline default of the modality)")
    p.add_argument("--modality", help="modality of the inputs (inferred from extensions when omitted)")
    p.add_argument("--out", help="write .npy or .safetensors instead of printing JSON lines")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable inputs and report them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_embed)

    p = commands.add_parser("train", help="train an adapter from a recipe (LightningCLI flags follow)",
                            description="Train a projector from a recipe YAML; any LightningCLI flag overrides it, "
                                        "e.g. --trainer.max_epochs 5 --trainer.devices 2 --trainer.strategy ddp")
    p.add_argument("recipe", help="recipe YAML (e.g. recipes/image_to_minilm_offline.yaml)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="LightningCLI overrides")
    p.set_defaults(run=_train)

    p = commands.add_parser("demo", help="embed assets/ offline and show the closest caption of each item")
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import BindError

    try:
        return args.run(args)
    except BindError as exc:
        print(f"bind {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
