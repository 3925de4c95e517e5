"""qvc-webui: OpenAI-compatible + Gradio front end for one Qwen3-VL serving instance."""

__version__ = "0.2.0"
