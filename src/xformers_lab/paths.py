"""Where the package's own files live, whether it runs from a wheel or from a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def conf_dir() -> Path:
    """The Hydra config tree: `xformers_lab/conf` inside a wheel, else the checkout's `conf/`.

    A wheel ships `conf/` inside the package (pyproject's force-include), so an installed
    `python -m xformers_lab.train` works from any directory. An editable or source checkout has
    no such copy and uses the repo's top-level `conf/` (src/xformers_lab -> repo), so config edits
    take effect without reinstalling.
    """
    packaged = _PACKAGE_DIR / "conf"
    source = _PACKAGE_DIR.parent.parent / "conf"
    for candidate in (packaged, source):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"xformers_lab's config tree is missing: neither {packaged} (installed wheel) nor {source}"
        " (source checkout) exists; reinstall the package or restore conf/"
    )
