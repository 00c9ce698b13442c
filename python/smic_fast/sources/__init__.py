"""The inputs people have: photo folders and their item ids, .npy embeddings, webdataset shards and clip-retrieval outputs."""
