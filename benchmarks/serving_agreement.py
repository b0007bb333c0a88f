"""Serving's NumPy copy against TensorFlow's scores on a trained model: metrics and top-k agreement.

    python benchmarks/serving_agreement.py --data DIR [--epochs 20] [--batch-size 100] --out FILE.json

Trains Mult-VAE (the paper's settings, ``--epochs`` and ``--batch-size`` as given) on a prepared
split, then scores the test users both ways (``Trainer.scores``, TensorFlow, and ``serving.SingleUserScorer``,
the copy ``vaecf recommend`` serves from) and records ``serving.agreement``: NDCG@100, Recall@20/50
of each, whether they are equal, the share of each user's top-20/top-100 the two agree on, and the
largest score difference. ``nox -s serving-agreement`` runs it on ML-100K and synthetic data.
This module runs nothing on import and defines no asv benchmarks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="serving_agreement", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="a prepared split (vaecf data prepare)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (>= 1)")
    p.add_argument("--batch-size", type=int, default=100, help="training batch (>= 1)")
    p.add_argument("--out", type=Path, required=True, help="the JSON record")
    args = p.parse_args(argv)
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            print(f"serving_agreement: error: {name} {value}: must be >= 1", file=sys.stderr)
            return 2
    if not (args.data / "stats.json").is_file():
        print(f"serving_agreement: error: --data {args.data}: not a prepared split (no stats.json)", file=sys.stderr)
        return 2
    from vaecf.config import RunConfig, TrainConfig
    from vaecf.data.split import Split
    from vaecf.io import write_json
    from vaecf.log import EpochLog
    from vaecf.provenance import header
    from vaecf.serving import SingleUserScorer, agreement
    from vaecf.train import Trainer

    split = Split.load(args.data)
    config = RunConfig(train=TrainConfig(epochs=args.epochs, batch_size=min(args.batch_size, split.train.shape[0])))
    trainer = Trainer(split.n_items, config)
    trainer.fit(split, log=EpochLog(None), show_progress=False)
    result = agreement(trainer, SingleUserScorer(trainer), split, "test")
    write_json(args.out, {"data": split.stats, "config": config.to_dict(), "agreement": result,
                          "machine": header()})
    m = result["metrics"]
    print(f"{split.stats['dataset']}: test NDCG@100 {m['reference']['ndcg@100']:.6f} (TensorFlow) vs "
          f"{m['served']['ndcg@100']:.6f} (serving copy); equal: {result['metrics_equal']}; top-20 overlap "
          f"{result['top_k_overlap']['20']:.4f}, identical top-100 lists {result['top_k_identical_lists']['100']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
