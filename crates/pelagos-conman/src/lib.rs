//! Pelagos console logs: incremental tailing, meaningful lines, stall detection.
