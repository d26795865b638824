"""hubforge: verified deployment artifacts for Hugging Face encoder models."""

__version__ = "0.2.0"
