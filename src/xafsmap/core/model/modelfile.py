"""A trained :class:`~xafsmap.core.model.training.Model` as a data file: saved once, mapped with anywhere.

:func:`write_model` stores every array of a model (the forest as the flat node arrays of
:class:`~xafsmap.core.model.forest.CompiledForest`, the classes, the references on the
stack's energies, the centroids, the survey's noise model, the thick limit) in one
``.npz`` archive beside a JSON header (the scalars, the normalization, the training
parameters, and what the caller adds: the reference files' sha256, the recipe).
:func:`read_model` loads it with ``allow_pickle=False``: the file is numbers and text,
and loading it cannot run code (no pickle). A model read back maps bit-identically to
the model that was written: the same node arrays, thresholds and leaf values feed the
same compiled walk, and every other array is stored at its own dtype.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .._files import atomic_file
from ..spectra.noise import NoiseModel
from ..spectra.survey import Survey
from ..spectra.thickness import ThickLimit
from .classify import Classifier
from .forest import CompiledForest, compile_forest
from .synthesize import Classes
from .training import Model

__all__ = ["MODEL_FORMAT", "SavedModel", "array_sha256", "read_model", "write_model"]

#: Version of the file layout; :func:`read_model` refuses other versions.
MODEL_FORMAT = 1
#: The header's member name inside the archive.
HEADER = "header.json"
_FOREST = tuple(f.name for f in fields(CompiledForest) if f.name != "n_features")
_NOISE = ("levels", "variance_table", "energy_profile", "field", "field_rows", "field_cols")
_SURVEY = ("noise", "profiles", "spectra", "spectra_variance", "spectra_max")
_CLASSIFIER = ("references", "energies", "centroids", "noise", "confusion", "importances")


@dataclass(frozen=True)
class SavedModel:
    """A model read from a file, with its header.

    Attributes
    ----------
    model : Model
    header : dict
        What :func:`write_model` wrote besides the arrays (``extra`` included).
    path : Path
    sha256 : str
        Of the whole file: names this model in the reports of the maps made with it.
    """

    model: Model
    header: dict
    path: Path
    sha256: str


def array_sha256(array: ArrayLike) -> str:
    """sha256 of an array's dtype, shape and bytes (C order).

    >>> array_sha256(np.zeros(3)) == array_sha256(np.zeros(3))
    True
    >>> array_sha256(np.zeros(3)) == array_sha256(np.zeros(3, np.float32))
    False
    """
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_model(path: str | os.PathLike, model: Model, *, extra: dict | None = None) -> Path:
    """Write a trained model as data (no pickle): an ``.npz`` of arrays with a JSON header.

    Parameters
    ----------
    path : str or Path
        The model file (any name; ``.npz`` is the convention). Written to a temporary
        name and renamed, so a failure leaves no half-written model.
    model : Model
        From :func:`~xafsmap.core.model.training.train_model` (or :func:`read_model`).
    extra : dict, optional
        JSON-ready fields for the header (the job adds the reference files' sha256 and
        the recipe of the training).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.simulate.sample import make_sample
    >>> from xafsmap.core.io.stack import Stack
    >>> from xafsmap.core.model.training import train_model
    >>> s = make_sample((24, 32), n_grains=6, rng=1)
    >>> model = train_model(Stack(s.stack, s.energies, {}), s.references, n_per_class=30, n_trees=3, rng=0)
    >>> path = write_model(pathlib.Path(tempfile.mkdtemp()) / "model.npz", model)
    >>> read_model(path).model.classifier.classes.names == model.classifier.classes.names
    True
    """
    classifier, found = model.classifier, model.survey
    forest = classifier.forest if isinstance(classifier.forest, CompiledForest) else compile_forest(classifier.forest)
    arrays = {f"forest/{name}": getattr(forest, name) for name in _FOREST}
    arrays.update({f"classifier/{name}": getattr(classifier, name) for name in _CLASSIFIER})
    arrays["classes/compositions"] = classifier.classes.compositions
    arrays.update({f"noise_model/{name}": getattr(found.noise_model, name) for name in _NOISE})
    arrays.update({f"survey/{name}": getattr(found, name) for name in _SURVEY if getattr(found, name) is not None})
    arrays.update({f"thick/{name}": getattr(model.thick, name) for name in ("absorbance", "chi2", "leak_chi2")})
    header = {
        "xafsmap_model": MODEL_FORMAT,
        "forest": {"n_features": forest.n_features},
        "classes": {"names": list(classifier.classes.names), "references": list(classifier.classes.references)},
        "classifier": {"window": list(classifier.window), "features": classifier.features,
                       "smooth": classifier.smooth, "accuracy": classifier.accuracy, "params": classifier.params},
        "survey": {"e0": found.e0, "threshold": found.threshold, "significance": found.significance,
                   "n_pixels": found.n_pixels, "sample_share": found.sample_share,
                   "normalization": found.normalization, "rule": found.rule},
        "noise_model": found.noise_model.info,
        "normalization": model.normalization,
        "params": model.params,
        "warnings": list(model.warnings),
        "thick": {"limit": model.thick.limit, "source": model.thick.source,
                  "baseline_chi2": model.thick.baseline_chi2},
        "references_sha256": array_sha256(classifier.references),
        "energies_sha256": array_sha256(classifier.energies),
        **(extra or {}),
    }
    path = Path(path)
    with atomic_file(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(HEADER, json.dumps(_jsonable(header), indent=1))
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
                archive.writestr(f"{name}.npy", buffer.getvalue())
    return path


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_archive(path: Path) -> tuple[dict, dict]:
    """The header and the arrays of a model file; ValueError in the user's terms otherwise."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not an xafsmap model file (not a zip archive of arrays)") from None
    with archive:
        names = archive.namelist()
        if HEADER not in names:
            raise ValueError(f"{path} is not an xafsmap model file (no {HEADER} in it)")
        header = json.loads(archive.read(HEADER))
        if header.get("xafsmap_model") != MODEL_FORMAT:
            raise ValueError(f"{path} is an xafsmap model of format {header.get('xafsmap_model')!r}; this xafsmap "
                             f"reads format {MODEL_FORMAT}: train the model again")
        arrays = {}
        for name in names:
            if name.endswith(".npy"):
                with archive.open(name) as member:
                    arrays[name[:-4]] = np.lib.format.read_array(io.BytesIO(member.read()), allow_pickle=False)
    return header, arrays


def read_model(path: str | os.PathLike) -> SavedModel:
    """Read a model written by :func:`write_model` (``allow_pickle=False``: no code runs).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    SavedModel
        The :class:`~xafsmap.core.model.training.Model` (its forest a
        :class:`~xafsmap.core.model.forest.CompiledForest`), the header and the file's sha256.

    Raises
    ------
    ValueError
        If the file is not an xafsmap model, of another format version, or misses an array.
    FileNotFoundError
        If there is no such file.
    """
    path = Path(path)
    header, arrays = _read_archive(path)
    try:
        model = _model(header, arrays)
    except KeyError as error:
        raise ValueError(f"{path} is an incomplete xafsmap model: it has no {error.args[0]}") from None
    return SavedModel(model, header, path, _file_sha256(path))


def _model(header: dict, arrays: dict) -> Model:
    forest = CompiledForest(n_features=int(header["forest"]["n_features"]),
                            **{name: arrays[f"forest/{name}"] for name in _FOREST})
    names = header["classes"]
    classes = Classes(tuple(names["names"]), arrays["classes/compositions"], tuple(names["references"]))
    info = header["classifier"]
    classifier = Classifier(forest=forest, classes=classes, window=tuple(info["window"]), features=info["features"],
                            smooth=info["smooth"], accuracy=info["accuracy"], params=info["params"],
                            **{name: arrays[f"classifier/{name}"] for name in _CLASSIFIER})
    noise_model = NoiseModel(info=header["noise_model"], **{name: arrays[f"noise_model/{name}"] for name in _NOISE})
    scalars = header["survey"]
    found = Survey(noise_model=noise_model, **scalars, **{name: arrays.get(f"survey/{name}") for name in _SURVEY})
    thick = header["thick"]
    limit = ThickLimit(float(thick["limit"]), thick["source"], arrays["thick/absorbance"], arrays["thick/chi2"],
                       float(thick["baseline_chi2"]), arrays.get("thick/leak_chi2", np.zeros(0)))
    return Model(classifier=classifier, survey=found, normalization=header["normalization"], params=header["params"],
                 warnings=tuple(header["warnings"]), thick=limit)
