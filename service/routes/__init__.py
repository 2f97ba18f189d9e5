"""The HTTP and WebSocket routes, one module per feature: uploads (transcription), live streams (stream),
reviewer feedback and fairness (feedback), health and the model card (health), Prometheus (metrics), the web page
(web). `service.app.create_app` includes them."""
