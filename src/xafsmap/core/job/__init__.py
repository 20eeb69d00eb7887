"""One job from settings: prepare, references, train, map and write; or search, or compare.

Every front end runs its work through here: ``xafsmap map`` (settings from options),
``xafsmap run`` (settings from a recipe), scripts, and the napari docks (the steps one
at a time). Locally or on a dask.distributed cluster; the report carries the settings
and the sha256 of the inputs.
"""

from .explorejob import iter_explore_settings, run_explore
from .inputs import hash_inputs
from .mapjob import MapRun, iter_map_settings, map_into, run_map, write_result
from .modeljob import TrainRun, load_model_for, reference_records, run_train
from .series import SeriesRun, iter_apply, iter_series, run_series
from .steps import (
    Prepared,
    check_sizes,
    classes_for,
    input_paths,
    open_measurement,
    prepare,
    references_for,
    shift_map_for,
    train,
)
from .trustjob import run_compare, run_search
from .volumejob import VolumeRun, run_volume

__all__ = [
    "MapRun",
    "Prepared",
    "SeriesRun",
    "TrainRun",
    "VolumeRun",
    "check_sizes",
    "classes_for",
    "hash_inputs",
    "input_paths",
    "iter_apply",
    "iter_explore_settings",
    "iter_map_settings",
    "iter_series",
    "load_model_for",
    "map_into",
    "open_measurement",
    "prepare",
    "reference_records",
    "references_for",
    "run_compare",
    "run_explore",
    "run_map",
    "run_search",
    "run_series",
    "run_train",
    "run_volume",
    "shift_map_for",
    "train",
    "write_result",
]
