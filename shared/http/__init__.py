"""HTTP handlers: the envelope, the one place errors become responses, and the routes of
`batch_api` and the single-purpose functions. The top layer: it imports the job services,
the adapters and the model, and nothing imports it."""
