# Hydra imports every module under hydra_plugins/ when it starts (DVC adds the repo root,
# its default hydra.plugins_path, to sys.path): this registers evolab's resolvers for `dvc exp run`.
from evolab.core.config import register_resolvers

register_resolvers()
