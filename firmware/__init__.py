"""Network design, compression, the hls4ml bridge and the RTL path."""
