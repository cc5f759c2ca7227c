"""The pipeline from catalog to bundle: train, fit, shard and merge, evaluate, calibrate."""
