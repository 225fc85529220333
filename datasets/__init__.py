"""The datasets: their sources and checksums (registry), download and
conversion (fetch, formats, prepare) and the prepared folders (store)."""

DATA_DIR = "datasets"  # where download.py prepares them, and trainer.py looks (--data_dir)
