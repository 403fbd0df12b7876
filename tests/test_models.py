from evolab.core import models
from evolab.core.models import EMBEDDED, assemble, sha256_of


def test_embedded_model_assembles_to_its_checksum_and_rebuilds_when_corrupt(tmp_path):
    name = "qwen2.5-coder-0.5b-instruct"
    path = assemble(name, tmp_path)
    assert sha256_of(path) == EMBEDDED[name].sha256
    with open(path, "r+b") as handle:  # a partial copy
        handle.truncate(1000)
    assert sha256_of(assemble(name, tmp_path)) == EMBEDDED[name].sha256
    with open(path, "r+b") as handle:  # a flipped byte
        handle.seek(123456)
        byte = handle.read(1)
        handle.seek(123456)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert sha256_of(assemble(name, tmp_path)) == EMBEDDED[name].sha256
    assert not list(tmp_path.glob("*.partial-*"))


def test_unknown_model_reference_says_what_to_use(tmp_path):
    import pytest

    with pytest.raises(models.ModelError, match="embedded models .*qwen2.5-coder-0.5b-instruct.* or the path"):
        models.resolve_gguf(str(tmp_path / "nope.gguf"))
