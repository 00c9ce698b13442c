"""Collections on disk: the .smic reader and writer, sharded runs (manifests) and open() over both."""
