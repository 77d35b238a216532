"""resumable-chat: resumable, followable and stoppable LLM chat streams for FastAPI on S2."""

__version__ = "0.1.0"
