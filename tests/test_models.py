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


def test_a_file_that_is_not_a_gguf_says_so(tmp_path):
    import pytest

    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>")
    with pytest.raises(models.ModelError, match=r"model.gguf is not a GGUF file \(it starts with b'<htm'"):
        models.resolve_gguf(str(fake))


def test_an_hf_folder_without_weights_says_what_it_needs(tmp_path):
    import pytest

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(models.ModelError, match=r"holds no model weights .*save_pretrained"):
        models.resolve_hf(str(tmp_path))
