"""The HTTP API (FastAPI) over the engine and the policy store (接口服务)."""
