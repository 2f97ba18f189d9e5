"""`python -m service`: serve the bundled model with uvicorn (settings from ASR_* variables and .env)."""

from service.cli import main

if __name__ == "__main__":
    main(["serve"])
