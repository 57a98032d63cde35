// Package perf holds the benchmark programs (one per subdirectory) that
// scripts/bench.sh runs. Every program measures its baselines in the same
// run and prints one line per figure, "name value unit", so runs on these
// noisy machines compare by ratio rather than by absolute numbers.
package perf
