//! The webhooks as the web app sees them: requests, replies, failures, the queue for a slot, retries, django-hookbox's flows.

mod django_flows;
mod failures;
mod queue;
mod replies;
mod requests;
mod retries;
