"""The optional Gradio interface at /gradio (Speak and Clone tabs)."""
