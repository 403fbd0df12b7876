# Hydra imports every module under hydra_plugins/ when it starts (DVC adds the repo root,
# its default hydra.plugins_path, to sys.path): this registers evolab's resolvers and its schema (conf/config.yaml's
# `evolab_schema`, the teacher's and the methods' `NAME_schema`) for `dvc exp run`.
from evolab.core import schema
from evolab.core.derived import register_resolvers

register_resolvers()
schema.register()
