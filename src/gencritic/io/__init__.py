"""Reading inputs: images, manifests, frame folders. No torch here, so it stays cheap to import."""
