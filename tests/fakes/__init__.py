"""Local fake provider servers (HTTP and WebSocket on 127.0.0.1, ephemeral ports) with fault injection."""
