"""The `rampup` command: `serve` runs the server; every other command talks to one over HTTP."""
