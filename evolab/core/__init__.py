"""What every stage shares: errors, the response cache, records (JSONL), the configuration, model files, prompts."""
