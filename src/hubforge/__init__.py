"""hubforge: verified deployment artifacts for Hugging Face encoder models."""

__version__ = "0.1.0"
