//! The webhooks as the web app sees them: requests, replies, failures, retries, django-hookbox's flows.

mod django_flows;
mod failures;
mod replies;
mod requests;
mod retries;
