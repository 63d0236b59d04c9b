"""``graphix compress``: measure redundancy, drop sublayers, or share attention maps.

    graphix compress analyze --spider-dir DIR --examples 64 --out analysis/
    graphix compress drop --kind attention --stack decoder --count 2 --out small/
    graphix compress share --threshold 0.9 --distill-steps 200 --out shared/

Calibration examples are drawn from Spider train; so are the training examples of
``--fine-tune-steps`` and ``--distill-steps``, with another seed.
"""

from __future__ import annotations

import argparse

HELP = "compress a trained model: analyze sublayer redundancy, drop sublayers, share attention"

CALIBRATION_SEED = 0
TRAINING_SEED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    analyze = actions.add_parser(
        "analyze", help="print how much each sublayer changes its input and how alike the "
                        "attention maps of layers are; save heat maps")
    _common(analyze)
    analyze.add_argument("--out", help="folder for heat maps (PNG) and similarities.json")

    drop = actions.add_parser("drop", help="remove the sublayers that change their input least")
    _common(drop)
    drop.add_argument("--kind", required=True, choices=["attention", "mlp", "block", "graph"],
                      help="what to remove; attention covers self- and cross-attention")
    drop.add_argument("--stack", required=True, choices=["encoder", "decoder", "both"])
    drop.add_argument("--count", type=int, required=True, help="how many to remove")
    drop.add_argument("--iterative", action="store_true",
                      help="remove one at a time, measuring again after each")
    drop.add_argument("--out", required=True, help="folder for the compressed model")
    drop.add_argument("--fine-tune-steps", type=int, default=0,
                      help="cross-entropy training steps after the drop (default: 0)")
    _training(drop)

    share = actions.add_parser(
        "share", help="let consecutive layers with similar attention maps reuse the first "
                      "one's probabilities, then distill from the original model")
    _common(share)
    share.add_argument("--threshold", type=float, required=True,
                       help="attention-map cosine similarity to a group's first layer at or "
                            "above which a layer joins the group; above 1 shares nothing")
    share.add_argument("--out", required=True, help="folder for the compressed model")
    share.add_argument("--distill-steps", type=int, default=100,
                       help="distillation steps from the unshared model (default: 100)")
    share.add_argument("--temperature", type=float, default=2.0,
                       help="softmax temperature of the KL term (default: 2)")
    share.add_argument("--kl-weight", type=float, default=0.5,
                       help="weight of the KL term; cross-entropy gets the rest (default: 0.5)")
    share.add_argument("--hidden-weight", type=float, default=0.0,
                       help="weight of the hidden-state MSE term (default: 0, off)")
    _training(share)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--spider-dir", help="Spider folder (default: $GRAPHIX_SPIDER_DIR)")
    parser.add_argument("--examples", type=int, default=64,
                        help="Spider train examples to measure on (default: 64)")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="examples per forward pass (default: 8)")


def _training(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-examples", type=int, default=2000,
                        help="Spider train examples to train on after compressing (default: 2000)")
    parser.add_argument("--learning-rate", type=float, default=1e-4,
                        help="learning rate after compressing (default: 1e-4)")


def run(args: argparse.Namespace) -> int:
    import copy
    import json
    from pathlib import Path

    from graphix.compression.attention_sharing import group_similar_layers, share_attention
    from graphix.compression.distillation import DistillationConfig, train_student
    from graphix.compression.layer_drop import drop_by_similarity
    from graphix.compression.similarity import measure_similarity, save_heatmaps
    from graphix.compression.workflow import (
        batches_of,
        count_parameters,
        load_text2sql,
        save_compressed,
        spider_records,
    )

    loaded = load_text2sql(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    lengths = dict(max_input_tokens=loaded.max_input_tokens,
                   max_target_tokens=loaded.max_new_tokens)
    use_graph = bool(model.config.use_graph)
    calibration = batches_of(
        spider_records(tokenizer, args.spider_dir, "train", args.examples, seed=CALIBRATION_SEED,
                       **lengths),
        args.batch_size, use_graph)
    parameters_before = count_parameters(model)

    if args.action == "analyze":
        report = measure_similarity(model, calibration)
        print(f"input-output cosine similarity per sublayer ({report.examples} examples):")
        print(report.table())
        for key, matrix in report.attention_similarity.items():
            print(f"\nattention-map similarity, {key} (row layer vs column layer):")
            for index, row in enumerate(matrix):
                print(f"  {index:<4}" + "".join(f"{value:8.3f}" for value in row))
        if args.out:
            folder = Path(args.out)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "similarities.json").write_text(json.dumps(report.to_dict(), indent=2))
            written = save_heatmaps(report, folder)
            print(f"\nwrote {', '.join(str(path) for path in written)}")
        return 0

    def training_records():
        return spider_records(tokenizer, args.spider_dir, "train", args.train_examples,
                              seed=TRAINING_SEED, **lengths)

    if args.action == "drop":
        result = drop_by_similarity(model, calibration, args.kind, args.stack, args.count,
                                    iterative=args.iterative)
        summary = {"method": "drop", "kind": args.kind, "stack": args.stack,
                   "iterative": args.iterative, "dropped": result.dropped,
                   "similarity": result.scores}
        for name, score in zip(result.dropped, result.scores):
            print(f"dropped {name} (input-output cosine {score:.4f})")
        steps = args.fine_tune_steps
        config = DistillationConfig(steps=steps, learning_rate=args.learning_rate,
                                    batch_size=args.batch_size)
        if steps:
            history = train_student(model, training_records(), config)
            summary["fine_tune"] = {"steps": steps, "final_loss": history[-1]["loss"]}
    else:
        report = measure_similarity(model, calibration)
        groups = group_similar_layers(report, args.threshold)
        teacher = copy.deepcopy(model)
        share_attention(model, groups)
        print("shared groups: " + (", ".join(groups) or "none"))
        config = DistillationConfig(steps=args.distill_steps, batch_size=args.batch_size,
                                    learning_rate=args.learning_rate,
                                    temperature=args.temperature, kl_weight=args.kl_weight,
                                    hidden_weight=args.hidden_weight)
        summary = {"method": "share", "threshold": args.threshold, "groups": groups}
        if groups and config.steps:
            history = train_student(model, training_records(), config, teacher=teacher)
            summary["distillation"] = {"steps": config.steps, "final_loss": history[-1]["loss"],
                                       "temperature": config.temperature,
                                       "kl_weight": config.kl_weight,
                                       "hidden_weight": config.hidden_weight}

    summary.update(calibration_examples=args.examples, parameters_before=parameters_before,
                   parameters_after=count_parameters(model))
    out = save_compressed(model, tokenizer, args.out, loaded.model_dir, summary)
    print(f"parameters: {parameters_before:,} -> {summary['parameters_after']:,}")
    print(f"model saved to {out}")
    return 0
