"""Compose a command line against the config tree up front, turning Hydra's multi-line errors
into one `UserError` line (unknown group option, unknown key, unparsable override)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from xformers_lab.config_schema import register_schemas
from xformers_lab.errors import UserError
from xformers_lab.paths import conf_dir

register_schemas()

HYDRA_FLAGS = {"-m", "--multirun"}


def compose_checked(config_name: str, argv: list[str]) -> Iterator[DictConfig]:
    """Yield the config of every value a sweep names (each other sweep at its first value), so
    `-m model=gpt,nope` fails before any job starts; the first is every sweep's first value.
    Each holds its `hydra` node (the run dir is known before Hydra creates it; `job_config`
    drops it). Skipped for Hydra's other flags (--cfg, --help, ...), which Hydra handles."""
    if any(arg.startswith("-") and arg not in HYDRA_FLAGS for arg in argv):
        return
    overrides = [arg for arg in argv if arg not in HYDRA_FLAGS]
    for variant in _sweep_variants(overrides):
        yield compose_config(config_name, variant, return_hydra_config=True)


def job_config(cfg: DictConfig) -> DictConfig:
    """`cfg` as Hydra hands it to the job: without its `hydra` node."""
    job = copy.deepcopy(cfg)
    with open_dict(job):
        job.pop("hydra", None)
    return job


def compose_config(
    config_name: str, overrides: list[str], return_hydra_config: bool = False
) -> DictConfig:
    """Compose `config_name` with `overrides`, raising `UserError` with one line on failure;
    with `return_hydra_config`, the `hydra` node (e.g. `hydra.run.dir`) comes too."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(
                config_name=config_name,
                overrides=overrides,
                return_hydra_config=return_hydra_config,
            )
    except MissingConfigException as err:
        raise UserError(_missing_option_message(err)) from None
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(_override_message(err, config_name, overrides)) from None
    finally:
        GlobalHydra.instance().clear()


def _sweep_variants(overrides: list[str]) -> list[list[str]]:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise UserError(f"cannot parse the command line: {_first_line(str(err))}") from None
    firsts, choices = [], []
    for override in parsed:
        if override.is_sweep_override() and override.is_discrete_sweep():
            values = list(override.sweep_string_iterator())
            key = override.get_key_element()
            firsts.append(f"{key}={values[0]}")
            choices.append([f"{key}={value}" for value in values])
        else:
            firsts.append(override.input_line)
            choices.append([override.input_line])
    variants = [firsts]
    for i, options in enumerate(choices):
        variants += [[*firsts[:i], option, *firsts[i + 1 :]] for option in options[1:]]
    return variants


def _missing_option_message(err: MissingConfigException) -> str:
    text = str(err)
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", text)
    if not found:
        return _first_line(text)
    group, option = found.groups()
    listed = text.split("Available options")[-1].split("Config search path")[0].splitlines()[1:]
    options = [o.strip() for o in listed if o.strip() and not o.strip().startswith("_")]
    return f"unknown {group} '{option}'; choose one of: {', '.join(options)}"


def _override_message(err: Exception, config_name: str, overrides: list[str]) -> str:
    text, cause = str(err), str(err.__cause__ or "")
    found = re.search(r"Could not override '([^']+)'", text)
    if found and "not in struct" in cause:
        key = found.group(1)
        parent = key.rpartition(".")[0]
        others = [o for o in overrides if not o.lstrip("+~").startswith(f"{key}=")]
        valid = _valid_keys(config_name, others, parent)
        return f"unknown key {key}{valid}; add a new key with +{key}=..."
    if found:
        return f"cannot set {found.group(1)}: {_first_line(cause or text)}"
    return _first_line(text)


def _valid_keys(config_name: str, overrides: list[str], parent: str) -> str:
    """` (valid keys of <parent>: ...)` as the user's other overrides compose it, or nothing."""
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            composed = compose(config_name=config_name, overrides=overrides)
            node = OmegaConf.select(composed, parent) if parent else None
    except (HydraException, OmegaConfBaseException):
        return ""
    finally:
        GlobalHydra.instance().clear()
    if not isinstance(node, DictConfig):
        return ""
    keys = [str(k) for k in node if not str(k).startswith("_")]
    return f" (valid keys of {parent}: {', '.join(keys)})"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "invalid configuration"
