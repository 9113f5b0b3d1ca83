"""The SID build lifecycle over the lake: the build registry (the one reader and writer of the builds table),
drift since the published build, and the pure decisions (refresh or rebuild, same inputs, the build id)."""
