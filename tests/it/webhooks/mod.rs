//! The webhooks as the web app sees them: requests, replies, failures, the queue for a slot, retries, django-hookbox's flows, the HTTP/1.1 wire.

mod django_flows;
mod failures;
mod queue;
mod replies;
mod requests;
mod retries;
mod wire;
