"""Learning and running sparse codes: batch OMP, K-SVD dictionary learning, and the device (CPU or CUDA) they run on."""
