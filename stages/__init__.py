"""DVC stages: each module has a pure function that does the work and a thin main()."""
