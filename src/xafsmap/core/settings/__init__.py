"""What to do: every choice of a session, declared once, and recipes (TOML) of them.

:class:`Settings` holds every choice; its declarations (:data:`SETTINGS`) generate the
command line's options, the recipe reader and writer and the napari docks' controls.
:mod:`~xafsmap.core.settings.limits` derives the memory and time bounds of a job from
this machine. Standard library only.
"""

from .limits import check_maps_memory, check_training, machine_memory
from .recipe import missing_paths, read_recipe, recipe_paths, settings_from_dict, settings_to_dict, write_recipe
from .schema import DEFAULTS, SETTINGS, Settings
from .declare import ReferenceSpec, Setting
from .values import check_field, check_settings

__all__ = [
    "DEFAULTS",
    "SETTINGS",
    "ReferenceSpec",
    "Setting",
    "Settings",
    "check_field",
    "check_maps_memory",
    "check_settings",
    "check_training",
    "machine_memory",
    "missing_paths",
    "read_recipe",
    "recipe_paths",
    "settings_from_dict",
    "settings_to_dict",
    "write_recipe",
]
