"""Run reports from the logs alone: read run and sweep directories, plot, tabulate."""
