"""Audio processing after the engine: resampling, sample conversion and streaming encoders."""
