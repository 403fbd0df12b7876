"""What happens to generated data before training: decontamination, the controls, embeddings, similarity."""
