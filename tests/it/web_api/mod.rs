//! The Web API (`/web/<method>`) and 0.3.3's `/rest` dialect.

mod access;
mod channels;
mod config;
mod publish;
mod rest;
mod users;
