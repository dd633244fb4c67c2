"""Cloud adapters: Firestore (store), Cloud Storage (bucket, signing), Kubernetes (cluster),
and `backends`, which builds them once from the settings. Each wraps its library's errors
in the project's own; they import the model, never the services or the handlers."""
