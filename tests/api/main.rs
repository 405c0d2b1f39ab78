mod confirm;
mod helpers;
mod manage;
mod operations;
mod queue;
mod schema;
mod smtp;
mod subscribe;
