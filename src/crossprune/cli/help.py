"""`crossprune --help` from one composition. Hydra's own help lists each group's options through a config repository
it deep-copies per group (86 copies of the ConfigStore, ~4 s); the groups are the folders of conf/, read directly."""

import string
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

PLACEHOLDERS = {"APP_CONFIG_GROUPS", "CONFIG"}  # what a template may use for this path; anything else goes to Hydra


def config_groups(conf: Path) -> str:
    """`group: option, option` per folder of conf/ that holds configs, as Hydra's help prints them."""
    lines = []
    for folder in sorted(p for p in conf.rglob("*") if p.is_dir()):
        group, options = folder.relative_to(conf).as_posix(), sorted(f.stem for f in folder.glob("*.yaml"))
        if options and group != "hydra" and not group.startswith("hydra/"):
            lines.append(f"{group}: {', '.join(options)}\n")
    return "".join(lines)


def app_help(conf: str, overrides: list[str], resolve: bool) -> str | None:
    """The help text for these overrides, or None when the template asks for more than this path gives."""
    with initialize_config_dir(conf, version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    template = string.Template(cfg.hydra.help.template)
    if not set(template.get_identifiers()) <= PLACEHOLDERS:
        return None
    with open_dict(cfg):
        del cfg["hydra"]
    return template.substitute(APP_CONFIG_GROUPS=config_groups(Path(conf)), CONFIG=OmegaConf.to_yaml(cfg, resolve=resolve))
