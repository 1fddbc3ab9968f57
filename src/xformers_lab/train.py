"""`python -m xformers_lab.train [overrides]`: pretrain or fine-tune from the Hydra config tree.

The command line is composed and validated first, so a mistake costs one line and creates no run
directory, and costs no Lightning or `datasets` import either (they load once the run starts);
then Hydra runs the job (or the sweep with `-m`), and each job is `training.run.train`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from xformers_lab.cli import HYDRA_FLAGS, compose_checked, job_config
from xformers_lab.errors import reported_user_errors
from xformers_lab.paths import conf_dir
from xformers_lab.settings import resolve_settings
from xformers_lab.training.preflight import check_output_dir

CONFIG_NAME = "train"


def main() -> None:
    """Console entry point."""
    with reported_user_errors():
        argv = sys.argv[1:]
        for i, cfg in enumerate(compose_checked(CONFIG_NAME, argv)):
            resolve_settings(job_config(cfg))  # the job itself reuses this result
            if i == 0:
                check_output_dir(cfg, multirun=any(arg in HYDRA_FLAGS for arg in argv))
    _hydra_entry()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=CONFIG_NAME)
def _hydra_entry(cfg: DictConfig) -> float | None:
    from xformers_lab.training.run import train  # the heavy imports, once the job starts

    with reported_user_errors():
        summary = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    return summary.get("best_val_loss")


if __name__ == "__main__":
    main()
