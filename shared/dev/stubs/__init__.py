"""Provider stubs for tests and the simulated city (docs/simulation.md, "Provider stubs").

- `server`: `StubServer` (a local HTTP server recording every request, answering through a
  responder), `Recorded`, `NoAnswer`, `Outage` (the shared outage switch: "500" or "timeout").
- `webhooks`: `WebhookFaults` (duplicate / reorder / drop probabilities and their seed) and
  `WebhookSender` (a thread and a queue per stub delivering signed events with those faults;
  retries with backoff where the provider retries).
- `stripe`: `FakeStripe` (Stripe's API answers), `Events` (real-shaped events), `sign`,
  `charge_for`, and `StripeStub` (the API plus the customer's side of Checkout; redelivers).
- `livekit`: `LiveKitStub` (the Twirp room service, rooms and participants; drops what it cannot
  deliver).
- `resend`: `ResendStub` (`POST /emails`, idempotent per key).
"""

from shared.dev.stubs.livekit import LiveKitStub
from shared.dev.stubs.resend import ResendStub
from shared.dev.stubs.server import NoAnswer, Outage, Recorded, StubServer
from shared.dev.stubs.stripe import Events, FakeStripe, StripeStub, charge_for, sign
from shared.dev.stubs.webhooks import WebhookFaults, WebhookSender

__all__ = [
    "Events",
    "FakeStripe",
    "LiveKitStub",
    "NoAnswer",
    "Outage",
    "Recorded",
    "ResendStub",
    "StripeStub",
    "StubServer",
    "WebhookFaults",
    "WebhookSender",
    "charge_for",
    "sign",
]
