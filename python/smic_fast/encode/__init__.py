"""Images to CLIP embeddings: image files and preprocessing, the image and text towers on ONNX Runtime, the tokenizer, the model registry and the export from open_clip."""
