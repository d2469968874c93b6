"""gencritic as a service: the HTTP API (``http``), the MCP server (``mcp_server``), and what
they share (``service``: models, roots, batching; ``security``: paths and keys)."""
