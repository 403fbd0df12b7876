"""Benchmarks (HumanEval, MBPP, the dev set), the harness (generate, extract, check, pass@k), the sandbox, diffs."""
