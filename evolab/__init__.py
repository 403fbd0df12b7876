"""evolab: a reproducible workbench for synthetic code-instruction data (Code Evol-Instruct and relatives)."""
