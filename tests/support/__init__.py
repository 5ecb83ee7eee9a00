"""What the end-to-end tests share: real servers, receivers, traffic, waiting. Use it rather than a local copy.

- `servers`: `start_server` runs a real `rampup serve` on a free loopback port; `Server` stops, kills and moves
  its clock. In a test, take the `server_factory` fixture (tests/conftest.py), which stops what it started.
- `receivers`: a webhook receiver (`Receiver`, also standing in for Slack and PagerDuty) that checks
  `X-Rampup-Signature`, and an SMTP server (`smtp_server`, aiosmtpd) that keeps every e-mail.
- `traffic`: request events from a fixed pool of users, attributed with the flag's state when sent.
- `waiting`: `wait_until(condition, what)`.
- `clock`: `ManualClock`, the SDK's telemetry time (`Client(clock=…)`), moved by `advance`.
- `ports`: `free_port()`.
- `cli`: `rampup_at(server, *args)` and `run_cli(args)`: a `rampup` command in the test's own process, the real
  command line over HTTP, its result as a subprocess gives it (exit code, stdout, stderr).
- `gate_inputs`: `AggregatesOnly`, the rest of a `GateInputs` for the core's gate tests that give only aggregates.

Waiting: never sleep for a duration and then assert. Wait for the condition that says the thing happened,
`wait_until(lambda: len(receiver.bodies()) == 3, "three deliveries")`; its timeout is generous (it only
matters when the test fails) and its message says what did not happen. To show that something did NOT
happen, first wait for something that comes after it (the outbox has delivered everything queued, the
controller has run at a time when it would have acted), then assert.

Time: a server started with `manual_clock=True` stands still until the test moves it.
`server.advance("48h")` moves it and runs the controller once at the new time (a "tick"); `advance("0s")`
is a tick without moving. Soak times, `for:` durations, alert windows, report schedules and retry backoff
all follow this clock, so a test makes days pass in one call, and a slow machine cannot make a stage end
early. The controller runs only on these ticks; the outbox is still delivered every
`RAMPUP_OUTBOX_POLL_S` of real time (what is due by the manual clock). A server on the system clock (the
default) is for tests where time plays no part. The SDK's telemetry (flush interval, retries, exposure interval,
request durations) runs on a `ManualClock` the same way: `clock.advance(0.25)` returns once the sender has done
what was due.
"""
