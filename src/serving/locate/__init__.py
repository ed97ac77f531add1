"""Where a photo was taken from the library around it: photo times and devices, tracks, clocks, evidence, one decision."""
