"""The one artifact format: a directory with the model file and ``metadata.json``.

Written by ``pingctl package`` and ``training/`` through :func:`write`; read by the
server and ``pingctl check`` through :func:`read_metadata` and :func:`load_estimator`.

Loading must not run code from the file. The model file is written with skops, which
rebuilds objects from their recorded state instead of unpickling them, and is loaded
with only the types scikit-learn, numpy and scipy define trusted; an operator extends
that list with ``PING_TRUSTED_TYPES``, never the artifact itself. A joblib pickle loads
only with ``PING_ALLOW_PICKLE=true``: unpickling runs whatever code the file holds.
The sha256 in metadata.json catches a corrupt or swapped file; it is not a signature.
"""

import hashlib
import importlib
import json
import os
import platform
import sys
import warnings
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import sklearn
from pydantic import BaseModel, ConfigDict, ValidationError

from ping import lazy_sklearn

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 2  # 1 was Ping 0.1's joblib-only metadata
MODEL_FILES = {"skops": "model.skops", "joblib": "model.joblib"}
# Whose types are trusted in a skops file without configuration.
TRUSTED_PACKAGES = ("sklearn", "numpy", "scipy")
# scikit-learn types that skops itself flags: their node indices are used without bounds
# checks, so a crafted file could crash the process or read memory it should not. A
# decision tree is trusted once check_trees() has verified every index; a histogram
# gradient-boosting predictor is not checked here, so it must be trusted by the operator.
TREE = "sklearn.tree._tree.Tree"
UNCHECKED = frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})

ColumnKind = Literal["number", "integer", "string", "boolean"]


class ArtifactError(Exception):
    """The artifact cannot be served; the message is one line naming the file and the problem."""


class Column(BaseModel):
    """One input column: its name, the JSON values it takes, and whether null is accepted."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: ColumnKind = "number"
    nullable: bool = False


class OutputTensor(BaseModel):
    """One model output as V2 describes it: ``predict`` or ``predict_proba``."""

    model_config = ConfigDict(frozen=True)

    datatype: Literal["INT64", "BYTES", "FP64"]
    shape: list[int]


class Sample(BaseModel):
    """A valid ``POST /predict`` body and exactly the answer the model gave for it."""

    model_config = ConfigDict(frozen=True)

    request: dict[str, Any]
    response: dict[str, Any]


class ModelMetadata(BaseModel):
    """What ``metadata.json`` records (format 2): the model, its inputs, outputs and sample."""

    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())

    format_version: Literal[2]
    name: str
    version: str
    created_at: str
    task: Literal["classification", "regression"]
    estimator: str
    """The fitted object's class, module-qualified."""
    model_file: str
    model_format: Literal["skops", "joblib"]
    sha256: str
    python_version: str
    sklearn_version: str
    numpy_version: str
    skops_version: str | None = None
    joblib_version: str | None = None
    input: Literal["array", "frame"]
    """``array``: rows reach the model as a float64 matrix; ``frame``: as a pandas
    DataFrame with the recorded column names and kinds (the model was fitted on one)."""
    n_features: int
    feature_names: list[str]
    columns: list[Column]
    outputs: dict[Literal["predict", "predict_proba"], OutputTensor]
    classes: list[int | str] = []
    class_names: list[str] = []
    metrics: dict[str, int | float] = {}
    sample: Sample


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def created_at() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.isoformat(timespec="seconds")


def dump_model(estimator: Any, output_dir: Path, model_format: str) -> dict[str, Any]:
    """Write the model file (atomically) and return the metadata fields that describe it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / MODEL_FILES[model_format]
    partial = path.with_suffix(".partial")
    fields: dict[str, Any] = {
        "model_file": path.name,
        "model_format": model_format,
        "python_version": platform.python_version(),
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
    }
    if model_format == "skops":
        # Deflated: a 100-tree forest is 0.2 MB instead of 2.4 MB, and loads as fast.
        skops_io().dump(estimator, partial, compression=zipfile.ZIP_DEFLATED)
        fields["skops_version"] = sys.modules["skops"].__version__
    else:
        import joblib

        joblib.dump(estimator, partial)
        fields["joblib_version"] = joblib.__version__
    os.replace(partial, path)  # a reader never sees half a file
    for stale in set(MODEL_FILES.values()) - {path.name}:
        (output_dir / stale).unlink(missing_ok=True)
    fields["sha256"] = sha256_of(path)
    return fields


def write_metadata(output_dir: Path, metadata: dict[str, Any]) -> ModelMetadata:
    """Validate ``metadata`` against the format and write it last, atomically."""
    checked = ModelMetadata.model_validate({"format_version": FORMAT_VERSION, **metadata})
    document = checked.model_dump(mode="json", exclude_none=True)
    partial = output_dir / f"{METADATA_FILE}.partial"
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    os.replace(partial, output_dir / METADATA_FILE)
    return checked


def read_metadata(model_dir: Path) -> ModelMetadata:
    """Parse and check ``metadata.json``; raise ArtifactError with one clear line."""
    path = model_dir / METADATA_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(
            f"{path}: not found (package a model with `pingctl package MODEL_FILE --output "
            f"{model_dir}`, or train the bundled one with `make train`)"
        ) from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"{path}: invalid metadata at document: {exc}") from None
    if isinstance(document, dict) and "format_version" not in document:
        raise ArtifactError(
            f"{path}: written by Ping 0.1 (no format_version); re-package the model with "
            "`pingctl package`, or retrain it with `make train`"
        )
    try:
        metadata = ModelMetadata.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise ArtifactError(f"{path}: invalid metadata at {where}: {first['msg']}") from None
    if len(metadata.classes) != len(metadata.class_names):
        raise ArtifactError(
            f"{path}: {len(metadata.classes)} classes but {len(metadata.class_names)} class_names"
        )
    if len(metadata.columns) != metadata.n_features:
        raise ArtifactError(
            f"{path}: {len(metadata.columns)} columns but n_features is {metadata.n_features}"
        )
    return metadata


def version_problem(metadata: ModelMetadata) -> str | None:
    """Why this process should not serve the model, or None when scikit-learn versions agree."""
    if metadata.sklearn_version == sklearn.__version__:
        return None
    return (
        f"model was saved by scikit-learn {metadata.sklearn_version} but this process "
        f"runs {sklearn.__version__}; re-package it, or set PING_ALLOW_VERSION_MISMATCH=true"
    )


def load_estimator(
    model_dir: Path,
    metadata: ModelMetadata,
    *,
    trusted_types: Sequence[str] = (),
    allow_pickle: bool = False,
) -> Any:
    """Verify the model file's checksum, then load it under the trust rules above."""
    path = model_dir / metadata.model_file
    if metadata.model_format == "joblib" and not allow_pickle:
        raise ArtifactError(
            f"{path}: is a joblib pickle, and loading one runs code from the file; "
            "re-package it with `pingctl package` (skops), or set PING_ALLOW_PICKLE=true "
            "for an artifact you built yourself"
        )
    try:
        actual = sha256_of(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found, but {METADATA_FILE} describes it") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot be read: {exc.strerror}") from None
    if actual != metadata.sha256:
        raise ArtifactError(
            f"{path}: sha256 {actual[:16]}… does not match {METADATA_FILE}'s "
            f"{metadata.sha256[:16]}…; the file was altered or replaced"
        )
    try:
        # A version mismatch is reported by version_problem(), once, by the caller.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sklearn.exceptions.InconsistentVersionWarning)
            if metadata.model_format == "joblib":
                import joblib

                return joblib.load(path)
            return _load_skops(path, trusted_types)
    except ArtifactError:
        raise
    except Exception as exc:
        raise ArtifactError(f"{path}: cannot be loaded: {type(exc).__name__}: {exc}") from None


def skops_io() -> ModuleType:
    """``skops.io``, imported without the parts of its default trust list Ping never uses.

    On import, skops builds that list from every scikit-learn estimator
    (``sklearn.utils.all_estimators`` imports every scikit-learn module: ~0.2 s, ~15 MB),
    from every public ufunc of numpy and ``scipy.special`` (each scipy one located by a
    scan of all loaded modules, ~0.1 s; the numpy scan also loads the submodules
    ping.startup defers), and from ``_BinMapper``, for which it imports
    ``sklearn.ensemble`` (~2.5 MB that an iris pipeline does not need). Ping never relies
    on that list: it passes skops the file's own types that ``is_trusted`` accepts, which
    covers all of these (tests/unit/test_startup.py checks the ufuncs), so they are skipped.

    skops also imports ``_DictWithDeprecatedKeys`` from sklearn.covariance._graph_lasso if
    it is there; scikit-learn removed it in 1.2. The module imports linear models and model
    selection, and through them scipy.linalg: skipped, the forest's start takes ~8 % fewer
    instructions. Where sklearn.covariance is deferred (ping.lazy_sklearn), nothing else
    imports it, so it is skipped too. Should something need a skipped module after all,
    skops is imported again without skipping anything.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    enumerate_all = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    scanned = (np, importlib.import_module("scipy.special"))
    listings = {module: vars(module).get("__dir__") for module in scanned}
    for module in listings:
        setattr(module, "__dir__", list)  # noqa: B010  # dir(module) is [] (PEP 562)
    skipped = ["sklearn.ensemble._hist_gradient_boosting.binning"]
    if lazy_sklearn.is_deferred("sklearn.covariance"):
        skipped.append("sklearn.covariance._graph_lasso")
    try:
        return import_skipping("skops.io", skipped)
    finally:
        sklearn.utils.all_estimators = enumerate_all
        for module, listing in listings.items():
            if listing is None:
                delattr(module, "__dir__")
            else:
                setattr(module, "__dir__", listing)  # noqa: B010


def import_skipping(name: str, skipped: Sequence[str]) -> ModuleType:
    """Import module ``name`` with each module in ``skipped`` failing to import, for
    code that imports them only to go without what fails. Should an import of one of
    them fail anywhere else, ``name`` is imported again with nothing skipped; what did
    import stays imported, and only what failed runs again."""
    blocked = [module for module in skipped if module not in sys.modules]
    for module in blocked:
        sys.modules[module] = None  # type: ignore[assignment]  # `import module` fails
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        if exc.name not in blocked:
            raise
    finally:
        for module in blocked:
            del sys.modules[module]
    imported = importlib.import_module(name)
    # The first try set the submodules it imported on the package it made, which failed:
    # the one that did import gets them too, as an import in one go would have set them.
    for loaded_name, loaded in list(sys.modules.items()):
        parent, _, child = loaded_name.rpartition(".")
        package = sys.modules.get(parent) if f"{parent}.".startswith(f"{name}.") else None
        if loaded is not None and package is not None and child not in vars(package):
            setattr(package, child, loaded)
    return imported


def _load_skops(path: Path, trusted_types: Sequence[str]) -> Any:
    """Load a skops file trusting only what ``is_trusted`` or the operator allows.

    The trust list is read from the file's schema, which is cheap; skops itself then
    refuses anything in the file outside that list and its own defaults, so the
    schema walk only decides what to allow, never what gets through unseen.
    """
    skops = skops_io()
    with zipfile.ZipFile(path) as archive:
        names = _type_names(archive.read("schema.json"))
    trusted = sorted(n for n in names if n in trusted_types or is_trusted(n))
    try:
        estimator = skops.load(path, trusted=trusted)
    except sys.modules["skops.io.exceptions"].UntrustedTypesFoundException:
        found = skops.get_untrusted_types(file=path)  # only to name what is refused
        refused = [name for name in found if name not in trusted] or found
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        advice = (
            "its node indices are not bounds-checked: add it to PING_TRUSTED_TYPES only "
            "for a file you made"
            if refused[0] in UNCHECKED
            else "if you trust its code, add it to PING_TRUSTED_TYPES"
        )
        raise ArtifactError(
            f"{path}: contains type {refused[0]}{more}, which is not trusted; {advice}"
        ) from None
    if TREE in names and TREE not in trusted_types:
        problem = check_trees(estimator)
        if problem:
            raise ArtifactError(f"{path}: refused: {problem}")
    return estimator


def _type_names(schema: bytes) -> set[str]:
    """Every ``module.name`` a skops schema refers to (classes, functions, types).

    Collected while the JSON is parsed, as each object is made: a 100-tree forest's schema
    is ~6,000 objects, and a second walk over them cost as much again as the parse.
    """
    names: set[str] = set()

    def note(node: dict[str, Any]) -> dict[str, Any]:
        module, name = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(name, str):
            names.add(f"{module}.{name}")
        return node

    json.loads(schema, object_hook=note)
    return names


def check_trees(estimator: Any) -> str | None:
    """Why a decision tree in ``estimator`` is unsafe to predict with, or None.

    scikit-learn walks a tree by the indices stored in it, unchecked. A tree it built
    numbers each child after its parent and splits only on its owner's features, so
    anything else (out of range, or a cycle) is a crafted or corrupt file.
    """
    from sklearn.tree._tree import Tree

    for owner in _objects_with_trees(estimator, Tree):
        tree = owner.tree_
        n = tree.node_count
        left, right, feature = tree.children_left, tree.children_right, tree.feature
        name = type(owner).__name__
        if not len(left) == len(right) == len(feature) == tree.value.shape[0] == n:
            return f"a {name}'s node arrays disagree on its node count"
        if tree.n_features != getattr(owner, "n_features_in_", tree.n_features):
            return f"a {name}'s tree splits on {tree.n_features} features, not its owner's"
        ids = np.arange(n)
        inner = left != -1
        if not np.array_equal(inner, right != -1):
            return f"a {name} has a node with only one child"
        children = np.concatenate([left[inner], right[inner]])
        parents = np.concatenate([ids[inner], ids[inner]])
        if ((children <= parents) | (children >= n)).any():
            return f"a {name} has a child index out of range"
        if ((feature[inner] < 0) | (feature[inner] >= tree.n_features)).any():
            return f"a {name} has a feature index out of range"
    return None


def _objects_with_trees(root: Any, tree_type: type) -> list[Any]:
    """Every estimator below ``root`` (pipelines, ensembles, wrappers) that owns a tree."""
    found, stack, seen = [], [root], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, np.ndarray) and item.dtype == object:
            stack.extend(item.ravel().tolist())
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("sklearn."):
            if isinstance(getattr(item, "tree_", None), tree_type):
                found.append(item)
            stack.extend(vars(item).values())
    return found


def is_trusted(name: str) -> bool:
    """True for a class or ufunc that scikit-learn, numpy or scipy itself defines.

    Functions are not trusted by package alone: a FunctionTransformer calls whatever
    function it holds, and numpy has functions that read files.
    """
    if name.split(".", 1)[0] not in TRUSTED_PACKAGES or name in UNCHECKED:
        return False
    module_name, _, attribute = name.rpartition(".")
    while module_name:
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, parent = module_name.rpartition(".")
            attribute = f"{parent}.{attribute}"
            continue
        for part in attribute.split("."):
            target = getattr(target, part, None)
        return (
            isinstance(target, type | np.ufunc)
            and (getattr(target, "__module__", None) or "numpy").split(".", 1)[0]
            in TRUSTED_PACKAGES
        )
    return False
