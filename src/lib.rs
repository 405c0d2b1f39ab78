//! Enlace: supporter contacts and mailing lists with double opt-in, in English and Spanish.

pub mod auth;
pub mod backup;
pub mod bounces;
pub mod cli;
pub mod client;
pub mod config;
pub mod copy;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod files;
pub mod http_limits;
pub mod imports;
pub mod jobs;
pub mod metrics;
pub mod routes;
pub mod sending;
pub mod services;
pub mod signup;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod views;
pub mod webhooks;
