"""Media on farm nodes: ffprobe/FFmpeg recipes, the hardened runner, preview making."""
