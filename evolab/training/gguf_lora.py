"""Write a peft LoRA adapter as a llama.cpp GGUF LoRA adapter, so the tuned model runs at Q4 speed.

llama.cpp's own converter (convert_lora_to_gguf.py) needs the base model's HF config or a
download; the adapter alone, the base GGUF's architecture and the gguf package suffice here.
"""
from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

PEFT_PREFIX = "base_model.model."


def base_architecture(base_gguf: Path) -> tuple[str, int]:
    reader = gguf.GGUFReader(str(base_gguf))
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    blocks = reader.get_field(gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch)).contents()
    return arch, int(blocks)


def peft_to_gguf(adapter_dir: Path, base_gguf: Path, out_path: Path) -> Path:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("use_rslora") or config.get("use_dora"):
        raise ValueError("only plain LoRA adapters convert to llama.cpp (no rsLoRA or DoRA)")
    arch, blocks = base_architecture(base_gguf)
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_id, blocks)
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))

    writer = gguf.GGUFWriter(str(out_path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    # llama.cpp scales by alpha / rank, as peft does.
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for name, array in sorted(tensors.items()):
        module, _, kind = name.removeprefix(PEFT_PREFIX).rpartition(".lora_")
        target = names.get_name(module)
        if target is None or kind not in ("A.weight", "B.weight"):
            raise ValueError(f"cannot map adapter tensor {name} to a llama.cpp tensor of a {arch} model")
        # peft's shapes (A: r x in, B: out x r) are what llama.cpp expects for lora_a and lora_b.
        writer.add_tensor(f"{target}.weight.lora_{kind[0].lower()}", np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path
