"""The ablation runner: replay a speed-up ladder and record speed *and* quality for every step."""
