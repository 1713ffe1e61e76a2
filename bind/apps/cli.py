"""The ``bind`` command line: one entry point, ``--help`` on every command."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _encoders(args: argparse.Namespace) -> int:
    from ..experts.registry import list_encoders

    rows = list_encoders(modality=args.modality)
    if args.json:
        print(json.dumps([{**row.__dict__, "modality": row.modality.value, "offline": row.offline} for row in rows],
                         indent=2))
        return 0
    header = ("name", "modality", "dim", "backend", "offline", "licence")
    table = [header] + [(r.name, r.modality.value, str(r.dim), r.backend, "yes" if r.offline else "no",
                         r.licence if len(r.licence) <= 60 else r.licence[:57] + "...") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def _embed(args: argparse.Namespace) -> int:
    from ..experts.api import EmbedResult, embed
    from ..io.embeddings import save_embeddings

    on_error = "skip" if args.skip_bad else "raise"
    if args.space:
        space = _space(args.space, args.device)
        result = space.embed(list(args.inputs), args.modality, batch_size=args.batch_size, progress=not args.quiet,
                             on_error=on_error)
        source = f"space {args.space} (identity {space.identity[:16]})"
    else:
        result = embed(list(args.inputs), encoder=args.encoder, modality=args.modality, batch_size=args.batch_size,
                       progress=not args.quiet, on_error=on_error, device=args.device)
        source = args.encoder or ""
    if isinstance(result, EmbedResult):
        vectors, kept = result.embeddings, result.indices
        for failure in result.failures:
            print(f"skipped: {failure}", file=sys.stderr)
    else:
        vectors, kept = result, list(range(len(args.inputs)))
    if args.out:
        save_embeddings(args.out, vectors, [args.inputs[i] for i in kept], encoder=source)
        print(f"wrote {len(kept)} embeddings of dim {vectors.shape[1]} to {args.out}", file=sys.stderr)
    else:
        for i, row in zip(kept, vectors.tolist()):
            print(json.dumps({"input": args.inputs[i], "embedding": [round(x, 6) for x in row]}))
    return 0


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", choices=("milvus",), help="keep the index in a vector database (pip install "
                   "'bind[store]'): IDX is then a Milvus Lite .db file or a Milvus server URI")
    p.add_argument("--collection", default="bind", help="the database collection (default: bind)")


def _space(name: str, device: str = "cpu"):
    from ..spaces.persist import load_space

    return load_space("lite" if name == "demo" else name).to(device)


def _index_build(args: argparse.Namespace) -> int:
    from ..index import Index

    space = _space(args.space, args.device)
    if args.feature_cache:
        space = space.with_feature_cache(args.feature_cache)
    if args.devices > 1 or args.num_nodes > 1:
        return _index_build_distributed(args, space)
    where = {"store": args.store, "uri": args.out, "collection": args.collection} if args.store else {"out": args.out}
    index, report = Index.build_from_folder(args.folder, space, backend=args.backend, wait=args.wait,
                                            progress=not args.quiet, **where)
    print(f"{args.out}: {len(index)} items; this run: {report}", file=sys.stderr)
    return 0


def _index_verify(args: argparse.Namespace) -> int:
    from ..index import Index

    index = Index.load(args.index, verify=True)
    print(f"{args.index}: {len(index)} items; every file matches its recorded size and sha256")
    return 0


def _index_build_distributed(args: argparse.Namespace, space: object) -> int:
    """Embed on Lightning's predict loop across devices/nodes (per-rank shards), merge and save on rank 0."""
    from pathlib import Path

    from ..index.folder import scan
    from ..train.predict import embed_corpus

    entries, _, unreadable = scan(Path(args.folder), None, recursive=True, exclude=[Path(args.out)])
    for failure in unreadable:
        print(f"skipped {failure.item}: {failure.reason}", file=sys.stderr)
    if args.store and not args.shards and "://" in args.out:
        print("bind index build: error: a DDP build into a server needs --shards DIR (a folder every rank can "
              "write)", file=sys.stderr)
        return 2
    result = embed_corpus([e.path for e in entries], space, args.shards or f"{args.out.rstrip('/')}.shards",
                          ids=[e.relative for e in entries], metadata=[{"path": str(e.path)} for e in entries],
                          accelerator=args.accelerator, devices=args.devices, num_nodes=args.num_nodes,
                          strategy="ddp", backend=args.backend, progress=not args.quiet,
                          **({"store": args.store, "uri": args.out, "collection": args.collection} if args.store else {}))
    if result is not None:  # global rank 0
        index, report = result
        if not args.store:  # a store index is written as it streams
            index.save(args.out)
        print(f"{args.out}: {len(index)} items; this run: {report}", file=sys.stderr)
    return 0


def _search(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..index import Index

    given = [(value, kind) for value, kind in ((args.query, "text"), (args.image, "image"), (args.audio, "audio"),
                                                (args.video, "video"), (args.points, "points")) if value is not None]
    if len(given) != 1:
        print("bind search: error: give exactly one query: a text, or --image/--audio/--video/--points FILE",
              file=sys.stderr)
        return 2
    value, kind = given[0]
    if args.store:
        if not args.space:
            print("bind search: error: a --store index needs --space (the space it was built with)", file=sys.stderr)
            return 2
        index = Index(_space(args.space), store=args.store, uri=args.index, collection=args.collection)
    else:
        index = Index.load(args.index)
    hits = index.search(value if kind == "text" else Path(value), k=args.k, result_modality=args.result_modality,
                        query_modality=kind, correction=args.correction, min_score=args.min_score)
    assert isinstance(hits, list)
    if args.json:
        print(json.dumps([{"rank": rank, "relevance": None if hit.relevance is None else round(hit.relevance, 6),
                           "score": round(hit.score, 6), "cosine": round(hit.cosine, 6), "modality": hit.modality.value,
                           "id": hit.id, "metadata": hit.metadata}
                          for rank, hit in enumerate(hits, 1)], indent=2))  # type: ignore[union-attr]
        return 0
    table = [("rank", "relevance", "score", "cosine", "modality", "id", "metadata")]
    table += [(str(rank), "-" if hit.relevance is None else f"{hit.relevance:.2f}", f"{hit.score:.3f}",  # type: ignore[union-attr]
               f"{hit.cosine:.3f}", hit.modality.value, hit.id,  # type: ignore[union-attr]
               ", ".join(f"{key}={val}" for key, val in hit.metadata.items()))  # type: ignore[union-attr]
              for rank, hit in enumerate(hits, 1)]
    widths = [max(len(row[i]) for row in table) for i in range(6)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:6], widths)) + "  " + row[6])
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import NO_AUDIO, cache_dir, demo_index, run_examples

    index, report = demo_index(cache_dir(args.cache), rebuild=args.rebuild, progress=not args.no_serve)
    audio = [f for f in report.failures if "audio is unavailable" in f.reason]
    for failure in report.failures:
        if failure not in audio:
            print(f"skipped {failure.item}: {failure.reason}", file=sys.stderr)
    note = f"; {len(audio)} audio files not indexed: {NO_AUDIO}" if audio else ""
    print(f"index of assets/: {len(index)} items ({len(report.added) + len(report.updated)} embedded now, "
          f"{report.unchanged} reused){note}")
    if args.no_serve:
        run_examples(index, k=args.k)
        return 0
    from .webdemo import serve

    serve(index, host=args.host, port=args.port, cache=cache_dir(args.cache))
    return 0


def _train(args: argparse.Namespace) -> int:
    from ..train.cli import main as train_main

    train_main(["--config", args.recipe, *args.overrides])
    return 0


def _eval(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..eval.evaluation import evaluate, format_table, result_record, write_result
    from ..spaces.persist import load_space

    written = None  # the MTEB result file, with --format mteb
    if args.task.startswith("mteb:"):
        from ..eval.mteb import BindEncoder, eval_result, get_task, run_task

        given = [flag for flag, value in (("--root", args.root), ("--file", args.file), ("--template", args.template))
                 if value]
        if given:
            raise ConfigError(f"{', '.join(given)}: not used by MTEB tasks, which load their own data "
                              "(Hugging Face datasets, its cache under HF_HOME)")
        task = get_task(args.task, args.split)
        model = BindEncoder(args.space, device=args.device)
        space = model.space
        mteb_result, written = run_task(model, task, args.out if args.format == "mteb" else None,
                                        batch_size=args.batch_size)
        result = eval_result(mteb_result, task)
    else:
        if args.format == "mteb":
            raise ConfigError("--format mteb writes MTEB's result JSON, which only MTEB's own tasks give: "
                              "--task mteb:<TaskName>")
        if not args.root:
            raise ConfigError(f"--root is required for task {args.task!r}: the dataset folder or manifest file")
        space = load_space(args.space).to(args.device)
        result = evaluate(space, args.task, args.root, split=args.split, file=args.file,
                          templates=args.template or None, batch_size=args.batch_size)
    record = result_record(space, result, space_name=args.space)
    print(json.dumps(record, indent=2) if args.json else format_table(result))
    if args.out and args.format == "mteb":
        print(f"wrote {written}", file=sys.stderr)
    elif args.out:
        write_result(args.out, record)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


class _RenamedResultFilter(argparse.Action):
    """``bind search --modality``: refused; the result filter is ``--result-modality``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        parser.error("--modality was the result filter: use --result-modality M (repeatable); the query's "
                     "modality comes from its flag (a text, or --image/--audio/--video/--points FILE)")


def _device_option(parser: argparse.ArgumentParser, note: str = "") -> None:
    parser.add_argument("--device", default="cpu", help=f"where the experts run: cpu, cuda, cuda:1, ...{note}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bind", description="Bind frozen pretrained experts into one space.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("encoders", help="list the registered experts")
    p.add_argument("--modality", help="only experts of this modality")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_encoders)

    p = commands.add_parser("embed", help="embed files or texts with one expert, or into a space")
    p.add_argument("inputs", nargs="+", help="file paths (or texts with --modality text)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--encoder", help="expert name (default: the offline default of the modality)")
    which.add_argument("--space", help="embed into a space instead (a folder or packaged name, e.g. lite); "
                                       "inputs may mix modalities")
    p.add_argument("--modality", help="modality of the inputs (inferred from extensions when omitted)")
    p.add_argument("--out", help="write .npy or .safetensors instead of printing JSON lines")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable inputs and report them")
    _device_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_embed)

    p = commands.add_parser("train", help="train an adapter from a recipe (LightningCLI flags follow)",
                            description="Train a projector from a recipe YAML; any LightningCLI flag overrides it, "
                                        "e.g. --trainer.max_epochs 5 --trainer.devices 2 --trainer.strategy ddp")
    p.add_argument("recipe", help="recipe YAML (e.g. recipes/image_to_minilm_offline.yaml)")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="LightningCLI overrides")
    p.set_defaults(run=_train)

    p = commands.add_parser("eval", help="evaluate a space: zero-shot classification or retrieval on local data",
                            description="Zero-shot classification (top-1/top-5) or retrieval (R@1/5/10 both ways, "
                                        "mAP, NDCG@10) of a space on a dataset you have locally, or an MTEB task "
                                        "run by MTEB (--task mteb:<TaskName>, the optional extra bind[mteb]).")
    p.add_argument("--space", required=True, help="a saved space folder or a packaged space name")
    p.add_argument("--task", required=True, help="esc50, modelnet40, audiocaps, clotho, msrvtt, flickr30k, coco, "
                                                 "manifest (retrieval), manifest-classes (zero-shot), or "
                                                 "mteb:<TaskName> (an MTEB text or image task, e.g. mteb:STS12)")
    p.add_argument("--root", help="the dataset folder (manifest tasks: the manifest file); not for mteb: tasks")
    p.add_argument("--split", help="split to evaluate (default: test; esc50: all folds, or fold1..fold5)")
    p.add_argument("--file", help="the task's CSV/JSON inside ROOT, when not the usual name")
    p.add_argument("--template", action="append", help="a prompt template with {} (repeatable; classification)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", help="write the result here: bind's JSON record (a file, atomically), or with "
                                 "--format mteb MTEB's result files (a folder: results/bind__<space>/<identity>/)")
    p.add_argument("--format", choices=("bind", "mteb"), default="bind",
                   help="what --out holds: bind's record (default) or MTEB's result JSON (mteb: tasks only)")
    p.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    _device_option(p)
    p.set_defaults(run=_eval)

    p = commands.add_parser("index", help="build search indexes", description="Build and update search indexes.")
    index_commands = p.add_subparsers(dest="index_command", required=True)
    p = index_commands.add_parser("build", help="index the media files of a folder (incremental)",
                                  description="Embed every media file under DIR with a space and save the index to "
                                              "--out; re-running adds only new or changed files, bad files are "
                                              "skipped and reported.")
    p.add_argument("folder", metavar="DIR", help="folder of media files (searched recursively)")
    p.add_argument("--space", required=True, help="a saved space folder, a packaged space name (e.g. 'lite', the "
                                                  "offline default; 'demo' is the same)")
    p.add_argument("--out", required=True, metavar="IDX", help="index folder (continued when it exists); with "
                   "--store, the database: a .db file (embedded) or a server URI such as http://host:19530")
    p.add_argument("--backend", default="auto", help="auto, exact, faiss-flat, faiss-ivf or faiss-hnsw")
    _store_options(p)
    p.add_argument("--devices", type=int, default=1,
                   help="embed with Lightning DDP on this many devices (processes); > 1 rebuilds from scratch")
    p.add_argument("--num-nodes", type=int, default=1, help="machines taking part in the DDP run")
    p.add_argument("--accelerator", default="cpu", help="cpu or gpu for the DDP run")
    _device_option(p, " (one process; --devices N uses --accelerator instead)")
    p.add_argument("--feature-cache", metavar="DIR", help="keep the experts' features here (e.g. "
                   "~/.cache/bind/features): a rebuild with other bond weights or adapters re-runs only those")
    p.add_argument("--shards", help="per-rank shard folder of a DDP run (default IDX.shards; resumable)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="when another build is writing IDX, wait up to this long (default: fail at once, naming it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_index_build)

    p = index_commands.add_parser("verify", help="check every file of a saved index against its checksums",
                                  description="Load IDX checking each file's size and sha256 and that every "
                                              "vector is finite; exit 0 when whole, 2 naming the damaged file "
                                              "(rebuild it with bind index build DIR --space S --out IDX).")
    p.add_argument("index", metavar="IDX", help="index folder")
    p.set_defaults(run=_index_verify)

    p = commands.add_parser("search", help="search an index with a query of any modality",
                            description="Search an index built by `bind index build` with a text or a file query.")
    p.add_argument("index", metavar="IDX", help="index folder; with --store, the database (.db file or server URI)")
    p.add_argument("query", nargs="?", help="a text query, e.g. \"a dog barking\"")
    _store_options(p)
    p.add_argument("--space", help="with --store: the space the index was built with (a folder or packaged name)")
    for kind in ("image", "audio", "video", "points"):
        p.add_argument(f"--{kind}", metavar="FILE", help=f"a {kind} file as the query")
    p.add_argument("--result-modality", action="append", metavar="M",
                   help="only results of this modality (repeatable)")
    p.add_argument("--modality", action=_RenamedResultFilter, help=argparse.SUPPRESS)
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--correction", metavar="METHOD", help="hubness correction of this search: none, csls, "
                   "inverted_softmax or qb_norm (default: the index's; see bind.index.scores)")
    p.add_argument("--min-score", type=float, metavar="R", help="drop hits whose calibrated relevance is below R")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=_search)

    p = commands.add_parser("demo", help="serve the any-to-any search demo over assets/ (offline)",
                            description="Index assets/ with the offline demo space (cached, incremental) and serve a "
                                        "web page to search it by text, image, sound, video or 3D file.")
    p.add_argument("--no-serve", action="store_true", help="print the results of example queries and exit")
    p.add_argument("--cache", help="cache root (default $BIND_CACHE or ~/.cache/bind); the demo uses <root>/demo")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached space and index")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("-k", type=int, default=5, help="results per example query with --no-serve")
    p.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..errors import BindError

    try:
        return args.run(args)
    except BindError as exc:
        print(f"bind {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
