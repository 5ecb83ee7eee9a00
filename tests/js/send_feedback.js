// What an application sends with the real @sentry/node: exceptions and user feedback, to the DSN given.
// Usage: node send_feedback.js '{"dsn": "...", "steps": [...]}'; prints each step's event id, one per line.
// A step: {"user"?, "tags"?, "exception": "message"} captures an Error; {"user"?, "tags"?, "message",
// "associated_event_id"?} is what the feedback widget sends through captureFeedback (with the reporter's
// name and address, which Rampup does not keep).
const Sentry = require("@sentry/node");

async function main() {
  const { dsn, steps } = JSON.parse(process.argv[2]);
  Sentry.init({ dsn, defaultIntegrations: false, tracesSampleRate: 0, debug: !!process.env.SENTRY_DEBUG });
  for (const step of steps) {
    Sentry.withScope((scope) => {
      if (step.user) scope.setUser({ id: step.user });
      for (const [name, value] of Object.entries(step.tags || {})) scope.setTag(name, value);
      if (step.exception) {
        console.log(Sentry.captureException(new Error(step.exception)));
        return;
      }
      const feedback = { message: step.message, name: "Ada", email: "ada@example.com" };
      if (step.associated_event_id) feedback.associatedEventId = step.associated_event_id;
      console.log(Sentry.captureFeedback(feedback, {}, scope));
    });
  }
  if (!(await Sentry.flush(20000))) throw new Error("Sentry did not flush within 20 s");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
