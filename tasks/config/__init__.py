"""What every stage reads: the job config, and the table of what each model accepts."""

from pathlib import Path

# configs/ sits beside tasks/: at the top of the repository, and in the
# installed package as assetgen/configs.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
