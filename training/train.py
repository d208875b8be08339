"""Train an iris classifier and write a versioned artifact directory.

    python -m training.train --output-dir models/iris

The directory holds ``model.skops`` and ``metadata.json``, written by ``ping.package``
(the code behind ``pingctl package``), so there is one artifact format. The data is scikit-learn's
bundled iris set (no network) and every random choice is seeded, so a re-run with
the same seed gives identical predictions. Set SOURCE_DATE_EPOCH to pin
``created_at`` as well, for reproducible image builds.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ping.package import package

ESTIMATORS = ("logreg", "forest")


def build_pipeline(estimator: str, seed: int) -> Pipeline:
    """A scaler plus the chosen classifier, seeded."""
    if estimator == "logreg":
        classifier: Any = LogisticRegression(max_iter=1000, random_state=seed)
    elif estimator == "forest":
        classifier = RandomForestClassifier(n_estimators=100, random_state=seed)
    else:
        raise ValueError(f"unknown estimator {estimator!r}; expected one of {ESTIMATORS}")
    return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])


def train(
    output_dir: Path,
    *,
    estimator: str = "logreg",
    name: str = "iris",
    version: str = "1",
    seed: int = 42,
    test_size: float = 0.25,
) -> dict[str, Any]:
    """Fit, evaluate on a held-out split, write the artifact; return its metadata.

    The artifact is written by ``ping.package``, as ``pingctl package`` writes one, with
    the first held-out rows as its recorded sample.
    """
    iris = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=test_size, random_state=seed, stratify=iris.target
    )
    pipeline = build_pipeline(estimator, seed).fit(x_train, y_train)
    predicted = pipeline.predict(x_test)
    model = package(
        pipeline,
        output_dir,
        name=name,
        version=version,
        sample=x_test[:3].tolist(),
        feature_names=list(iris.feature_names),
        class_names=[str(n) for n in iris.target_names],
        extra={
            "training": {"recipe": estimator, "seed": seed},
            "metrics": {
                "accuracy": round(float(accuracy_score(y_test, predicted)), 6),
                "f1_macro": round(float(f1_score(y_test, predicted, average="macro")), 6),
                "n_train": len(y_train),
                "n_test": len(y_test),
            },
        },
    )
    return model.metadata.model_dump(mode="json", exclude_none=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models/iris"),
        help="artifact directory to write (default: %(default)s)",
    )
    parser.add_argument(
        "--estimator",
        choices=ESTIMATORS,
        default="logreg",
        help="classifier after the scaler (default: %(default)s)",
    )
    parser.add_argument("--name", default="iris", help="model name (default: %(default)s)")
    parser.add_argument("--model-version", default="1", help="model version (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    metadata = train(
        args.output_dir,
        estimator=args.estimator,
        name=args.name,
        version=args.model_version,
        seed=args.seed,
    )
    print(
        f"wrote {args.output_dir}/ ({metadata['name']} v{metadata['version']}, "
        f"{metadata['training']['recipe']}): accuracy {metadata['metrics']['accuracy']:.3f}, "
        f"f1_macro {metadata['metrics']['f1_macro']:.3f}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
