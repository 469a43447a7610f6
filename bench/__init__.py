"""`make bench`: the service's speed and memory as ratios to baselines measured in the same run."""
