"""Supervised fine-tuning (TRL SFT, LoRA or full) and the LoRA's conversion to GGUF for llama.cpp."""
