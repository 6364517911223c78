"""The served model: loading it safely, and predicting with it.

Training writes the pipeline as a skops artifact and, when skl2onnx can convert it, compiled to
ONNX next to it; the card says which serves (docs/model.md). Three ways to serve, fastest first:
a StandardScaler + binary LogisticRegression is folded into one dot product read from the skops
archive's arrays; an ONNX model runs with onnxruntime; anything else is loaded with skops and
predicts with scikit-learn. scikit-learn, scipy and skops are imported only on that last path:
importing them is most of a cold start (about 1.3 s of 2 s in the image, docs/performance.md),
and the serving image has them only when the card needs them.
"""

import functools
import hashlib
import io
import json
import math
import operator
import threading
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, current_app

from mlservice import contract as contracts
from mlservice import process
from mlservice.contract import Contract


class ModelError(Exception):
    """The model cannot be trained to standard or loaded safely; the message is one sentence."""


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The folded map's two columns, z and -z: exp(-log(1 + e^(sign * z))) is sigmoid(-sign * z),
# class 0's probability, then class 1's.
_CLASS_SIGNS = np.array([1.0, -1.0])


def _fold(mean, scale, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler + binary LogisticRegression folded into one map.

    Such a pipeline is sigmoid(w . (x - mean) / scale + b) = sigmoid(x . w' + b'), so a row costs
    one dot product instead of scikit-learn's per-call input checks. Kept as two columns, z and
    -z (w' and -w', b' and -b'), so that one product gives both classes' terms.
    """
    weights = coef / scale
    bias = intercept - np.sum(weights * mean)
    return np.multiply.outer(weights, _CLASS_SIGNS), bias * _CLASS_SIGNS


def _affine_form(pipeline: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The folded map of a loaded StandardScaler + binary LogisticRegression; None for others."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = [step for _, step in pipeline.steps]
    if len(steps) != 2 or type(steps[0]) is not StandardScaler:
        return None
    scaler, classifier = steps
    if type(classifier) is not LogisticRegression or classifier.coef_.shape[0] != 1:
        return None
    mean = scaler.mean_ if scaler.with_mean else 0.0
    scale = scaler.scale_ if scaler.with_std else 1.0
    return _fold(mean, scale, classifier.coef_[0], classifier.intercept_[0])


# What the archive of the folded pipeline may contain: these estimators, plain containers and
# strings, numpy arrays. Nothing in it is instantiated; the arrays are read with
# allow_pickle=False. Anything else goes through skops.io.load and its trusted-types check.
FOLDED_STEPS = (
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression",
)
FOLDED_NODE_TYPES = {
    "sklearn.pipeline.Pipeline",
    *FOLDED_STEPS,
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "numpy.ndarray",
    "numpy.float64",
}
SKOPS_PROTOCOL = 2  # the schema layout read below
# Types skops does not trust by default that the training candidates need, each reviewed: the
# random forest's trees are scikit-learn's own node arrays. A new candidate that needs another
# type fails `make model` until that type is reviewed and added here.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)


def _node_types(node: Any) -> set[str]:
    if isinstance(node, list):
        return set().union(*map(_node_types, node))
    if not isinstance(node, dict):
        return set()
    found = {f"{node['__module__']}.{node['__class__']}"} if "__class__" in node else set()
    return found.union(*map(_node_types, node.values()))


def _read_affine(path: Path, features: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The folded map read from the archive as data, if it holds exactly that pipeline."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
            if schema.get("protocol") != SKOPS_PROTOCOL:
                return None
            if not _node_types(schema) <= FOLDED_NODE_TYPES:
                return None

            def attributes(node: dict) -> dict:
                return node["content"]["content"]

            def array(node: dict) -> np.ndarray:
                with archive.open(node["file"]) as file:
                    return np.load(io.BytesIO(file.read()), allow_pickle=False)

            steps = [pair["content"][1] for pair in attributes(schema)["steps"]["content"]]
            if [f"{step['__module__']}.{step['__class__']}" for step in steps] != list(
                FOLDED_STEPS
            ):
                return None
            scaler, classifier = map(attributes, steps)
            if not (
                json.loads(scaler["with_mean"]["content"]) is True
                and json.loads(scaler["with_std"]["content"]) is True
            ):
                return None
            mean, scale = array(scaler["mean_"]), array(scaler["scale_"])
            coef, intercept = array(classifier["coef_"]), array(classifier["intercept_"])
            classes = array(classifier["classes_"])
    except (KeyError, TypeError, ValueError, OSError, zipfile.BadZipFile):
        return None  # not that pipeline, or damaged: skops.io.load decides and explains
    shapes = (mean.shape, scale.shape, coef.shape, intercept.shape)
    if shapes != ((features,), (features,), (1, features), (1,)) or classes.tolist() != [0, 1]:
        return None
    return _fold(mean, scale, coef[0], intercept[0])


# The ONNX graph's output of class probabilities, one column per class (skl2onnx with
# zipmap=False names it so); its input is the features as float32, in the contract's order.
PROBABILITIES = "probabilities"


def onnx_session(content: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread per worker: the workers already use every core, and a pool per worker would
    # only compete for them (as the BLAS pools, gunicorn.conf.py). No pool threads also means
    # nothing of a session runs outside the calling thread.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(content, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An ONNX model run by onnxruntime, with a session of its own in each process.

    gunicorn loads the model in its master and forks the workers (preload_app). onnxruntime does
    not promise that a session survives a fork, so a process that did not build the session it
    holds builds its own from the checked bytes at its first prediction (a few milliseconds).
    """

    def __init__(self, content: bytes):
        self.content = content
        self._session, self._pid = onnx_session(content), process.pid()
        self._threads = threading.local()  # each thread's OneRow, for its session
        inputs = self._session.get_inputs()
        self.outputs = [output.name for output in self._session.get_outputs()]
        if (
            len(inputs) != 1
            or inputs[0].type != "tensor(float)"
            or PROBABILITIES not in self.outputs
        ):
            raise ValueError(
                f"expected one float input and an output named {PROBABILITIES!r} "
                "(skl2onnx with zipmap=False)"
            )
        self.input = inputs[0].name

    def session(self) -> Any:
        if self._pid != process.pid():  # forked: the session came from the parent
            self._session, self._pid = onnx_session(self.content), process.pid()
        return self._session

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        session = self.session()
        if len(rows) == 1:
            output = self._one_row(session, rows)
        else:
            output = session.run([PROBABILITIES], {self.input: rows.astype(np.float32)})[0]
        # Each row over its sum, in float64: float32 sums can miss 1 by 1e-7, and the answer's
        # probabilities add up.
        return np.divide(output, output.sum(axis=1, keepdims=True, dtype=float), dtype=float)

    def _one_row(self, session: Any, rows: np.ndarray) -> np.ndarray:
        """The model's output for one row, run through this thread's buffers (OneRow); its
        first one-row run in a session is an ordinary run, whose output sizes the buffers."""
        bound = getattr(self._threads, "one_row", None)
        if bound is None or bound.session is not session:
            row = rows.astype(np.float32)
            outputs = dict(zip(self.outputs, session.run(None, {self.input: row}), strict=True))
            self._threads.one_row = OneRow(session, self.input, row, outputs)
            return outputs[PROBABILITIES]
        bound.row[...] = rows  # float32, as astype rounds
        session.run_with_iobinding(bound.binding)
        return bound.output


class OneRow:
    """A session's input and output bound to buffers of one row, for the requests of one thread.

    Most requests score one row. Run with buffers bound once, onnxruntime skips its per-call
    set-up of the feeds and fetches, about a third of its cost for a one-row forest on the server
    (docs/performance.md). The caller copies the output before the next run overwrites it.
    """

    def __init__(self, session: Any, input_name: str, row: np.ndarray, outputs: dict):
        self.session, self.row = session, row
        self.binding = session.io_binding()
        self.binding.bind_cpu_input(input_name, row)
        # Every numeric output gets a buffer, so that a run allocates none: besides the
        # probabilities, the label skl2onnx's classifiers give. Others (strings, maps) are left
        # unbound, and not fetched.
        self.buffers = {
            name: np.empty_like(value)
            for name, value in outputs.items()
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
        }
        for name, buffer in self.buffers.items():
            self.binding.bind_output(
                name,
                element_type=buffer.dtype.type,
                shape=buffer.shape,
                buffer_ptr=buffer.ctypes.data,
            )
        self.output = self.buffers[PROBABILITIES]


@dataclass(frozen=True)
class Model:
    pipeline: Any  # the scikit-learn Pipeline; None when served folded or by onnxruntime
    card: dict
    affine: tuple[np.ndarray, np.ndarray] | None = None
    onnx: OnnxModel | None = None

    @property
    def version(self) -> str:
        return self.card["version"]

    @property
    def runtime(self) -> str:
        """How the model is served: its folded arrays, onnxruntime or scikit-learn."""
        if self.affine is not None:
            return "folded arrays (numpy)"
        return "onnxruntime" if self.onnx is not None else "scikit-learn"

    def predict_rows(self, rows: list[list[float]]) -> list[list[float]]:
        """predict_proba for rows given as Python lists (a JSON body's), answered as lists.

        Most requests score one row, and for one row numpy's per-call overhead costs more than
        the arithmetic: on the server, whose caches every request's socket work clears, 10 to 20
        µs of the 220 to 240 a request took (docs/performance.md). A folded model's one row is
        therefore computed in Python floats, the same steps as predict_proba's.
        """
        if len(rows) == 1 and self.affine is not None:
            return [self._folded_row(rows[0])]
        return self.predict_proba(np.array(rows, dtype=float)).tolist()

    def _folded_row(self, row: list[float]) -> list[float]:
        """One row through the folded map, in Python floats: the steps of predict_proba's arrays,
        sigmoid(-z) and sigmoid(z) as exp(-log(1 + e^±z))."""
        weights, bias = self._affine_row
        z = sum(map(operator.mul, row, weights)) + bias
        return [math.exp(-_softplus(z)), math.exp(-_softplus(-z))]

    @functools.cached_property
    def _affine_row(self) -> tuple[list[float], float]:
        """The folded map's z = x . w + b as Python floats: w and b (the first column's)."""
        weights, biases = self.affine
        return weights[:, 0].tolist(), float(biases[0])

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities per row, columns in the contract's label order; rows are validated."""
        if self.onnx is not None:
            return self.onnx.predict_proba(rows)
        if self.affine is not None:
            if len(rows) == 1:
                # As predict_rows computes one row, so that a row alone gets the same answer by
                # every route: JSON, CSV and the page.
                return np.array([self._folded_row(rows[0].tolist())])
            weights, biases = self.affine
            # Class 1 (the second label) has sigmoid(z), class 0 sigmoid(-z), both written as
            # exp(-log(1 + e^∓z)): no overflow for any z, and the smaller probability keeps its
            # digits (1 - p would lose them). One array operation each, for both columns.
            proba = rows.dot(weights)  # [z, -z] per row
            proba += biases
            np.logaddexp(0.0, proba, out=proba)
            np.negative(proba, out=proba)
            return np.exp(proba, out=proba)
        import sklearn

        # Inputs are checked finite before they get here, so skip scikit-learn's re-check.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self.pipeline.predict_proba(rows)


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow for any x, as numpy's logaddexp(0, x) computes it."""
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def labels_of(proba: np.ndarray | list[list[float]]) -> list[str]:
    """The label of each row of predict_proba's or predict_rows' output: its most probable
    class, the first of equal ones."""
    labels = contracts.CONTRACT.labels
    if isinstance(proba, list):  # predict_rows': a few rows, without a numpy call
        return [labels[row.index(max(row))] for row in proba]
    return [labels[index] for index in proba.argmax(axis=1).tolist()]


def _contract_of(card: dict) -> tuple:
    """What the card says of the contract it was trained for: features (name, type, range), labels."""
    features = [
        (f.get("name"), f.get("type"), f.get("min"), f.get("max")) if isinstance(f, dict) else None
        for f in card.get("features") or []
    ]
    return features, card.get("labels")


def _served(contract: Contract) -> tuple:
    features = [(f.name, f.type, f.min, f.max) for f in contract.features]
    return features, contract.labels


def _classes(pipeline: Any, path: Path) -> list:
    """The class codes of a loaded pipeline, or ModelError when it cannot give probabilities."""
    classes = getattr(pipeline, "classes_", None)
    if classes is None or not hasattr(pipeline, "predict_proba"):
        raise ModelError(
            f"Model file {path} holds a {type(pipeline).__name__} that gives no class "
            "probabilities (classes_ and predict_proba); the service serves classifiers."
        )
    return np.asarray(classes).tolist()


def load(model_path: str | Path, contract: Contract | None = None) -> Model:
    """Load a model and its card, refusing anything that does not check out.

    The card must describe the contract served (its features, their types and ranges, and its
    labels) and the model must give one probability per label, its classes coded 0, 1, ... in
    the contract's label order, as training codes them. The contract is the served one unless
    another is given.
    """
    contract = contract or contracts.CONTRACT
    path = Path(model_path)
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"Model file {path} not found; train one with `make model`.")
    try:
        card = json.loads(card_path.read_text())
        expected = card["artifact"]["sha256"]
        trained_with = card["scikit_learn_version"]
    except FileNotFoundError:
        raise ModelError(f"Model card {card_path} not found next to {path}.") from None
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"Model card {card_path} is not a valid model card.") from None
    if _contract_of(card) != _served(contract):
        raise ModelError(
            f"Model card {card_path} was trained for another contract than model.toml (other "
            "features, types, ranges or labels); retrain with `make model`."
        )
    if file_checksum(path) != expected:
        raise ModelError(f"Model file {path} does not match the checksum in {card_path.name}.")
    codes = list(range(len(contract.labels)))
    affine = _read_affine(path, len(contract.features))
    if affine is not None and codes == [0, 1]:
        return Model(pipeline=None, card=card, affine=affine)
    serving = card.get("serving") or {}
    if serving.get("runtime") == "onnxruntime":
        return Model(pipeline=None, card=card, onnx=_load_onnx(path, serving, contract))
    installed = installed_version("scikit-learn")  # sklearn.__version__, without importing it
    if trained_with != installed:
        raise ModelError(
            f"Model {path} was trained with scikit-learn {trained_with} but "
            f"{installed or 'no scikit-learn'} is installed; retrain it with `make model`"
            + ("." if installed else ", or install the skops dependency group.")
        )
    import skops.io

    try:
        untrusted = [
            name for name in skops.io.get_untrusted_types(file=path) if name not in TRUSTED_TYPES
        ]
        if untrusted:
            raise ModelError(
                f"Model file {path} contains types skops does not trust: {', '.join(untrusted)}."
            )
        pipeline = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except ModelError:
        raise
    except Exception as error:  # skops raises many kinds for a damaged archive
        raise ModelError(f"Model file {path} is not a readable skops file ({error}).") from None
    classes = _classes(pipeline, path)
    if classes != codes:
        raise ModelError(
            f"Model file {path} predicts the classes {classes}, but the contract's "
            f"{len(codes)} labels are coded {codes}; retrain with `make model`."
        )
    return Model(pipeline=pipeline, card=card, affine=_affine_form(pipeline))


def installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _load_onnx(path: Path, serving: dict, contract: Contract) -> OnnxModel:
    """The ONNX model the card names, checked against its checksum and run once."""
    try:
        onnx_path = path.with_name(serving["file"])
        expected, opset = serving["sha256"], serving["opset"]
    except (KeyError, TypeError):
        raise ModelError(
            f"Model card {path.with_suffix('.json')} is not a valid model card."
        ) from None
    if not onnx_path.is_file():
        raise ModelError(
            f"ONNX model {onnx_path} not found next to {path}; retrain with `make model`."
        )
    content = onnx_path.read_bytes()
    if hashlib.sha256(content).hexdigest() != expected:
        raise ModelError(f"ONNX model {onnx_path} does not match the checksum in its card.")
    try:
        compiled = OnnxModel(content)
        lowest = np.array([[feature.min for feature in contract.features]])
        width = compiled.predict_proba(lowest).shape
    except Exception as error:  # onnxruntime raises its own kinds for a model it cannot run
        reason = " ".join(str(error).split())[:300]
        raise ModelError(
            f"ONNX model {onnx_path} (opset {opset}) cannot be served by onnxruntime "
            f"{installed_version('onnxruntime')}: {reason}; retrain with `make model`."
        ) from None
    labels = len(contract.labels)
    if width != (1, labels):
        raise ModelError(
            f"ONNX model {onnx_path} gives probabilities shaped {width} for one row, but the "
            f"contract's {labels} labels need (1, {labels}); retrain with `make model`."
        )
    return compiled


def serving_note(serving: dict) -> str:
    """How the card says the model is served, in one line (`mlservice train`, the model page)."""
    if not serving:
        return "not recorded (a card from before ONNX compiles)"
    if serving["runtime"] != "onnxruntime":
        return f"not compiled to ONNX: {serving['reason']}"
    parity = serving["parity"]
    return (
        f"ONNX compile (opset {serving['opset'].get('ai.onnx')}) checked against scikit-learn: "
        f"largest probability difference {parity['max_probability_difference']:.2g} on "
        f"{parity['rows']}, same labels"
    )


EXTENSION = "mlservice.model"  # the app's loaded Model, in app.extensions


def init_app(app: Flask) -> None:
    """Load the model once, at start-up; gunicorn's preload shares it with every worker."""
    app.extensions[EXTENSION] = load(app.config["MODEL_PATH"])


def current_model() -> Model:
    return current_app.extensions[EXTENSION]
